"""Errors raised by :mod:`daemon`.

::

    DaemonError
     ├── UsageError      a bad command-line value: one line, exit code 2
     └── StoppingError   work given up, nothing of it done, because the daemon is stopping
"""

from __future__ import annotations

__all__ = ["DaemonError", "StoppingError", "UsageError"]


class DaemonError(Exception):
    """Root of every error raised by the ``daemon`` package."""


class UsageError(DaemonError):
    """A bad value given on the command line or in a request; shown as one line, exit 2."""


class StoppingError(DaemonError):
    """Work given up, nothing of it done, because the daemon is stopping (a ledger write
    that stopped waiting on another process's lock). The service loop logs a step that
    raises it after a stop request as ``step_abandoned``, without a traceback: an expected
    end, not a failure."""
