"""Errors raised by :mod:`daemon.ledger` (under :class:`daemon.errors.DaemonError`)::

LedgerError             the ledger cannot be opened, migrated, read or written
 ├── UnknownJobError    no job has that id (also a LookupError)
 ├── MissingLedgerError no ledger file where a command reads one (also a UsageError)
 └── LockWaitStoppedError
                        a statement stopped waiting for another connection's lock
                        because the daemon is stopping (also a StoppingError)
"""

from __future__ import annotations

from pathlib import Path

from daemon.errors import DaemonError, StoppingError, UsageError

__all__ = ["LedgerError", "LockWaitStoppedError", "MissingLedgerError", "UnknownJobError"]


class LedgerError(DaemonError):
    """The ledger cannot be opened, migrated or written (names the file)."""


class UnknownJobError(LedgerError, LookupError):
    """No job has that id (``job_id``); the message is ``unknown job 'ID'`` unless given."""

    def __init__(self, job_id: str, message: str | None = None) -> None:
        self.job_id = job_id
        super().__init__(f"unknown job {job_id!r}" if message is None else message)


class MissingLedgerError(LedgerError, UsageError):
    """No ledger at ``file`` (in ``state_dir``) for a command that reads one: a wrong
    ``--state-dir`` or ``state_dir``, or no ``carbond run`` there yet; bad input, exit 2.
    ``problem`` is what is there instead (nothing, or not a regular file); the message is
    ``FILE: PROBLEM``."""

    def __init__(self, path: Path, problem: str) -> None:
        self.file = str(path)
        self.state_dir = str(path.parent)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class LockWaitStoppedError(LedgerError, StoppingError):
    """A statement stopped waiting for another connection's lock: the daemon is stopping
    (:meth:`daemon.ledger.base.Connection.stop_waiting_when`). Nothing of it was written."""
