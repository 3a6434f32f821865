"""Errors raised by :mod:`daemon`.

::

    DaemonError
     └── UsageError      a bad command-line value: one line, exit code 2
"""

from __future__ import annotations

__all__ = ["DaemonError", "UsageError"]


class DaemonError(Exception):
    """Root of every error raised by the ``daemon`` package."""


class UsageError(DaemonError):
    """A bad value given on the command line or in a request; shown as one line, exit 2."""
