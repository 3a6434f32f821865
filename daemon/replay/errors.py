"""Errors raised by :mod:`daemon.replay` (all under :class:`daemon.errors.DaemonError`)."""

from __future__ import annotations

from daemon.errors import DaemonError, UsageError

__all__ = ["ReplayError", "ReplayInputError"]


class ReplayError(DaemonError):
    """A replay could not run (the message names the file, line or field)."""


class ReplayInputError(ReplayError, UsageError):
    """A bad replay input: a trace line, a cluster file field, an option; exit code 2."""
