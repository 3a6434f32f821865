"""Errors raised by executors (all are :class:`daemon.errors.DaemonError`).

::

    DaemonError
     └── ExecutorError               a job could not be started, watched or stopped
          ├── LaunchRefusedError     starting it would break a rule (wrong user, root, bad id)
          └── ExecutorUnavailableError  the executor's scheduler cannot be reached now
                                         (e.g. Slurm down): jobs wait, they do not fail
"""

from __future__ import annotations

from daemon.errors import DaemonError

__all__ = ["ExecutorError", "ExecutorUnavailableError", "LaunchRefusedError"]


class ExecutorError(DaemonError):
    """A job could not be started, watched or stopped; the message names the job."""


class LaunchRefusedError(ExecutorError):
    """The executor refuses to start a job (e.g. as another user while not root)."""


class ExecutorUnavailableError(ExecutorError):
    """The executor's scheduler cannot be reached now (e.g. Slurm's controller is down)."""
