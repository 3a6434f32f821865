"""The executor seam: how the service starts, watches, cancels and re-adopts jobs.

Implementations: ``local`` (this node's GPUs, a process group per job, as the submitting user),
``simulated`` (replay and the demo: jobs end when the simulated clock passes their end), and
later ``slurm``. The service persists each :class:`RunHandle` in the ledger, so a restarted
daemon can hand them back to :meth:`Executor.adopt`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

__all__ = ["Executor", "ExitStatus", "LaunchSpec", "NotStarted", "RunHandle"]


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """Everything needed to start one job.

    ``argv`` is run without a shell. ``uid``/``gid`` are the submitting user's; an executor
    running as root switches to them, one running as that user checks they match, and any other
    combination is refused. ``gpu_indices`` become ``CUDA_VISIBLE_DEVICES``.
    ``expected_duration_s`` is the planner's estimate (the simulated executor uses it).
    ``cwd`` is the absolute directory the job starts in, entered as the job's user (a user who
    cannot enter it is refused); None starts it in the user's home directory.
    """

    job_id: str
    argv: tuple[str, ...]
    uid: int
    gid: int
    gpu_indices: tuple[int, ...]
    log_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    expected_duration_s: float = 0.0
    cwd: str | None = None


@dataclass(frozen=True, slots=True)
class RunHandle:
    """A started job. ``token`` is the executor's own reference (e.g. a pid and its start time,
    or a Slurm job id), stored in the ledger and given back to :meth:`Executor.adopt`."""

    job_id: str
    executor: str
    token: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a job ended. ``exit_code`` None with ``signal`` set: killed by that signal;
    both None: the outcome could not be recovered (``reason`` says why).

    An executor that measures energy itself (Slurm's ``sacct`` ``ConsumedEnergy``) reports it
    as ``energy_j`` (GPU or node energy of the run, J) with ``energy_method`` naming how
    (``slurm-sacct``); the service uses it for a job no GPU meter on this node followed."""

    job_id: str
    finished_at: datetime
    exit_code: int | None
    signal: int | None = None
    reason: str = ""
    energy_j: float | None = None
    energy_method: str | None = None

    @property
    def succeeded(self) -> bool:
        """True when the job exited with status 0."""
        return self.exit_code == 0


@dataclass(frozen=True, slots=True)
class NotStarted(ExitStatus):
    """The answer of :meth:`Executor.adopt` for a job that provably never started: the daemon
    died between recording the launch and starting it (the handle's ``token`` is empty). The
    executor must make sure it cannot start later (e.g. claim the job's start marker), and
    the service queues the job again."""


class Executor(Protocol):
    """Starts jobs and reports when they end. Methods take ``now``; none blocks for long."""

    @property
    def name(self) -> str: ...

    def launch(self, spec: LaunchSpec, now: datetime) -> RunHandle:
        """Start the job; raises a ``DaemonError`` subclass naming the job when it cannot."""
        ...

    def poll(self, handles: Sequence[RunHandle], now: datetime) -> list[ExitStatus]:
        """Exit statuses of the jobs among ``handles`` that have ended."""
        ...

    def cancel(self, handle: RunHandle, now: datetime) -> None:
        """Ask the job to stop (SIGTERM, then SIGKILL after the grace period); ``poll``
        reports the end."""
        ...

    def adopt(self, handles: Sequence[RunHandle], now: datetime) -> list[RunHandle | ExitStatus]:
        """After a restart: each handle is still running (returned, with its token) or has
        ended while the daemon was down (its recovered :class:`ExitStatus`). A handle with an
        empty ``token`` is a launch the daemon may not have finished: look the job up by
        ``job_id``; :class:`NotStarted` when it never started."""
        ...
