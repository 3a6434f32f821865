"""This install's carbond version: the installed package's, as ``carbond --version`` prints it
and the recalibration checkpoint's fingerprint records it."""

from __future__ import annotations

import functools
from importlib import metadata

__all__ = ["carbond_version"]


@functools.cache
def carbond_version() -> str:
    """The installed ``carbond`` package's version ("unknown": a source checkout that is not
    installed)."""
    try:
        return metadata.version("carbond")
    except metadata.PackageNotFoundError:
        return "unknown"
