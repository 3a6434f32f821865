"""Errors raised by executors (all are :class:`daemon.errors.DaemonError`).

::

    DaemonError
     └── ExecutorError               a job could not be started, watched or stopped
          ├── LaunchRefusedError     a rule forbids starting it (wrong user, root, bad id)
          │    └── JobNotRunnableError  the job as submitted cannot start (its command, its
          │                             working directory, its id), wherever and whenever
          ├── HeldJobEndedError      a held job to release was ended in its scheduler unstarted
          └── ExecutorUnavailableError  the executor's scheduler cannot be reached now
               │                         (e.g. Slurm down): jobs wait, they do not fail
               ├── CommandMissingError    a command of the executor's cannot be run on this
               │                          host (its configuration, not the scheduler)
               ├── RegionClosedError      the scheduler refused the job because the region's
               │                          part of it takes no jobs now (a partition drained)
               ├── LaunchUnconfirmedError  it was asked to start a job but did not answer:
               │                           the job may have started (looked up, not retried)
               ├── AnswerUnreadableError  it answered, but what it printed of the job cannot
               │                          be read (cut short): nothing decided, asked again
               └── EndNotRecordedError   a job left the scheduler's queue but its accounting
                                         has no end of it yet (asked again later)
"""

from __future__ import annotations

from daemon.errors import DaemonError
from daemon.executors.base import EndedUnstarted

__all__ = [
    "AnswerUnreadableError",
    "CommandMissingError",
    "EndNotRecordedError",
    "ExecutorError",
    "ExecutorUnavailableError",
    "HeldJobEndedError",
    "JobNotRunnableError",
    "LaunchRefusedError",
    "LaunchUnconfirmedError",
    "RegionClosedError",
]


class ExecutorError(DaemonError):
    """A job could not be started, watched or stopped; the message names the job."""


class LaunchRefusedError(ExecutorError):
    """The executor refuses to start a job (e.g. as another user while not root)."""


class JobNotRunnableError(LaunchRefusedError):
    """The job cannot start as it was submitted (an empty command, a working directory its
    user cannot enter, an id unusable as a file name): a fault of its own, not of carbond or
    the cluster, so a launch anywhere, at any time, would fail the same (as the wrapper's
    ``cannot start``, exit code 126, does once the job's process is being started)."""


class HeldJobEndedError(ExecutorError):
    """A held job to release had been ended in the executor's scheduler before it started
    (Slurm: its pending job ``scancel``-ed by its owner or an admin): no run happened."""

    def __init__(self, message: str, ended: EndedUnstarted) -> None:
        super().__init__(message)
        self.ended = ended


class ExecutorUnavailableError(ExecutorError):
    """The executor's scheduler cannot be reached now (e.g. Slurm's controller is down)."""


class CommandMissingError(ExecutorUnavailableError):
    """A command the executor runs cannot be run on this host (Slurm's ``scontrol`` missing
    under ``bin_dir``, or not executable): this host's configuration (DESIGN.md: bad config
    is a clear error naming the field), not its scheduler being down; its scheduler was not
    asked. The message says which command, its path and why, and the setting to fix
    (``cannot run scontrol on this host (/opt/slurm/bin/scontrol: No such file or
    directory; executors.slurm.bin_dir)``). What needed it waits, as while the scheduler
    cannot be reached, and is asked again once it can run."""


class RegionClosedError(ExecutorUnavailableError):
    """The scheduler refused to take a job because the part of it the job's region is
    takes no jobs now (Slurm: its partition set ``DRAIN``, ``INACTIVE`` or ``DOWN`` by an
    operator, or gone): not the job's fault, so it waits, queued and planned again (where
    the region is unavailable meanwhile), rather than fail."""


class LaunchUnconfirmedError(ExecutorUnavailableError):
    """The scheduler took the request to start a job but gave no answer in time (Slurm's
    ``sbatch`` timed out against a controller that accepts connections but does not answer):
    it may have the job. The run is kept and looked up (``adopt`` with an empty token, by the
    job's name) rather than launched again, which could start it twice."""


class AnswerUnreadableError(ExecutorUnavailableError):
    """The scheduler answered, but what it printed of the job cannot be read (Slurm: its
    ``squeue`` row cut short, the wrong number of fields): whether it waits, runs or ended is
    not known, so nothing is decided on it; the service asks again on a later round."""


class EndNotRecordedError(ExecutorUnavailableError):
    """A held job its scheduler no longer lists as waiting or running, whose end its
    accounting has not recorded yet (Slurm: ``sacct`` lags ``squeue`` by about half a second,
    or slurmdbd is down): whether it ever ran is not known yet, so nothing is decided; the
    service asks again on a later round (the job stays held, its token kept)."""
