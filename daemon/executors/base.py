"""The executor seam: how the service starts, watches, cancels and re-adopts jobs.

Implementations: ``local`` (this node's GPUs, a process group per job, as the submitting user),
``simulated`` (replay and the demo: jobs end when the simulated clock passes their end), and
``slurm`` (jobs handed to Slurm). The service persists each :class:`RunHandle` in the ledger,
so a restarted daemon can hand them back to :meth:`Executor.adopt`.

Optional capabilities, checked with ``isinstance``: a :class:`Reserving` executor's
scheduler holds a *planned* job until its planned start (Slurm's ``--begin``), so users see it
before it runs and it is moved in place when the plan changes; a :class:`CapacityAware`
executor tells the planner which of its GPUs others hold or are down; a :class:`Reporting`
executor says what is wrong with it now (Slurm unreachable), for ``health.json``; a
:class:`Discovering` executor finds its regions' GPUs itself and asks again for those of the
regions its scheduler did not answer for; a :class:`Sweeping` executor removes at start what
runs no daemon follows any more left behind (the local executor's jobs' cgroups).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from policies import Device
from policies.fast_init import fast_init

__all__ = [
    "CapacityAware",
    "Discovering",
    "EndedUnstarted",
    "Executor",
    "ExitStatus",
    "Held",
    "LaunchSpec",
    "NotStarted",
    "Reporting",
    "Reserving",
    "RunHandle",
    "Sweeping",
    "WatchingHeld",
]


@fast_init
@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """Everything needed to start one job.

    ``argv`` is run without a shell. ``uid``/``gid`` are the submitting user's; an executor
    running as root switches to them, one running as that user checks they match, and any other
    combination is refused. ``gpu_indices`` (NVML's, the meter's) become ``CUDA_VISIBLE_DEVICES``.
    ``expected_duration_s`` is the planner's estimate (with the learned recalibration factor in
    use); ``raw_duration_s`` the estimator's own, before that factor (None: the same). A
    simulated run's true time scales from the raw one: how long a job really runs does not
    depend on what the planner has learned.
    ``region`` is the planned region and ``device_ids`` its planned GPUs (``<region>/<index>``;
    the Slurm executor picks the partition and node from them).
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
    raw_duration_s: float | None = None
    region: str = ""
    device_ids: tuple[str, ...] = ()
    name: str = ""
    cwd: str | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class RunHandle:
    """A started job. ``token`` is the executor's own reference (e.g. a pid and its start time,
    or a Slurm job id), stored in the ledger and given back to :meth:`Executor.adopt`.
    ``deadline``: the job's (None: it has none); an executor whose scheduler may keep a
    released job waiting (Slurm) takes back one still waiting when its deadline passes
    (:class:`NotStarted`), and the service expires it, as it would a job it never released.
    ``uid``: the job's owner (None: not given); a handle without token is looked up among
    that user's jobs only (Slurm: anyone may name a job as carbond names it).
    ``cancel_sent_at``: when a cancel was first sent to the run, by this daemon or one since
    restarted (None: never, as far as the ledger knows); an executor that escalates after a
    grace period (the local one's SIGKILL) counts the grace from then."""

    job_id: str
    executor: str
    token: str
    started_at: datetime
    deadline: datetime | None = None
    uid: int | None = None
    cancel_sent_at: datetime | None = None
    gpus: int | None = None  # the GPUs its plan gave it (None: not given)


@fast_init
@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a job ended. ``exit_code`` None with ``signal`` set: killed by that signal;
    both None: the outcome could not be recovered (``reason`` says why).

    An executor that measures energy itself (Slurm's ``sacct`` ``ConsumedEnergyRaw``) reports it
    as ``energy_j`` (GPU or node energy of the run, J) with ``energy_method`` naming how
    (``slurm-sacct``); the service uses it for a job no GPU meter on this node followed.
    ``started_at``: when the job really started, where the executor knows better than its
    launch time (Slurm). ``end_to_second``: ``finished_at`` is cut to the whole second (sacct's
    End), so a time within that second may be before or after the end. ``cancelled_by_owner``:
    the job's owner stopped it in the executor's scheduler itself (Slurm: their own
    ``scancel``, not ``carbond cancel``): it is then ``cancelled``, not ``failed``.
    ``not_runnable``: the executor refused the job as submitted before it ran
    (:class:`~daemon.executors.errors.JobNotRunnableError`), ``exit_code`` the wrapper's 126
    for it (a failure of its own, as one the job's process cannot start), ``reason`` the
    refusal (its failure's reason). ``gpus``: the GPUs the run really held, where its
    executor saw it hold other than its plan gave it (Slurm: its owner's ``scontrol update``
    of its GRES); its GPU-hours are charged for those (None: as planned). ``earlier_runs_s``:
    the seconds the earlier runs ``energy_j`` also covers ran (Slurm: a job requeued after it
    started, measured over every run; each run's Start to End plus a second, sacct's times
    being whole seconds), so its energy is checked against them too; 0: its run's alone.
    ``out_of_memory``: how the OOM killer ended processes of the run, in words, where its
    executor saw it (the local executor: its cgroup's ``memory.events``); a failure's reason
    says it after its exit code or signal. Empty: it did not, or the executor cannot tell."""

    job_id: str
    finished_at: datetime
    exit_code: int | None
    signal: int | None = None
    reason: str = ""
    energy_j: float | None = None
    energy_method: str | None = None
    started_at: datetime | None = None
    end_to_second: bool = False
    cancelled_by_owner: bool = False
    not_runnable: bool = False
    gpus: int | None = None
    earlier_runs_s: float = 0.0
    out_of_memory: str = ""

    def __post_init__(self) -> None:
        # The reason quotes what the job or its wrapper wrote (a status file's JSON may hold
        # "\udcff"): text UTF-8 cannot encode could not be stored, and one such run end made
        # every reconcile fail. Such characters become U+FFFD.
        if not self.reason.isascii():
            fixed = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in self.reason)
            object.__setattr__(self, "reason", fixed)

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


@dataclass(frozen=True, slots=True)
class EndedUnstarted:
    """A held job its scheduler ended before it ever started (Slurm: a ``scancel`` of the
    pending job by its owner or an admin): no run happened. ``reason``: the scheduler's words
    (``slurm CANCELLED by uid 0``); ``by_owner``: the job's owner ended it (the job is then
    ``cancelled``, else ``failed``); ``refused``: the executor itself cancelled it, as it would
    now refuse to launch it (a root job held before ``allow_root_jobs`` was turned off), and
    ``reason`` is that refusal (the job then fails as a refused launch does; where the
    scheduler started it just before the executor could hold it, it was cancelled running
    and ``reason`` says so)."""

    reason: str
    by_owner: bool
    refused: bool = False


@dataclass(frozen=True, slots=True)
class Held:
    """A planned job in the executor's scheduler: its ``token`` (as in :class:`RunHandle`) and,
    when the scheduler has already started it (its planned start came), ``started_at``; or,
    when the scheduler ended it unstarted, ``ended``."""

    token: str
    started_at: datetime | None = None
    ended: EndedUnstarted | None = None


@runtime_checkable
class Reserving(Protocol):
    """An executor whose scheduler can hold a planned job until its planned start.

    The service calls :meth:`hold` whenever a job's plan (start, region, GPUs) is new or
    changed, :meth:`release` when the plan says "start now", and :meth:`withdraw` when the job
    is no longer planned there (cancelled, expired, planned elsewhere or unplanned). The token
    is kept in the job's run row while it is planned; an empty token means the daemon may have
    died while handing the job over, and the executor looks it up by ``job_id``.
    """

    def hold(
        self, spec: LaunchSpec, start: datetime, token: str, now: datetime, *, new: bool = False
    ) -> Held:
        """Hand the job over to start no earlier than ``start``, or move it there in place
        (``ended``: the scheduler had ended it unstarted; it is not submitted again). ``new``
        (with an empty token): nothing of this job was ever sent to the scheduler (its run row
        was just written), so a job of it the scheduler does not list now never existed and
        none can have ended: its accounting (Slurm's ``sacct``, which needs slurmdbd) is not
        asked."""
        ...

    def release(
        self, spec: LaunchSpec, token: str, now: datetime, *, new: bool = False
    ) -> RunHandle:
        """Let the held job start now in ``spec``'s region and GPUs; its run handle. ``new``:
        as for :meth:`hold` (nothing of it ever sent: its hand-overs all failed).

        Raises:
            HeldJobEndedError: the scheduler had ended the held job before it started.
        """
        ...

    def withdraw(self, job_id: str, token: str, now: datetime, *, uid: int) -> Held | None:
        """Take back a held job so that it never starts; None when done (or nothing was
        held). When the scheduler had ended it unstarted, the answer says so (``ended``); when
        it had already started it, it is left running and the answer is its token (the one
        found by ``job_id`` among the jobs of its owner ``uid`` when ``token`` is empty) and
        when it started."""
        ...


@runtime_checkable
class WatchingHeld(Protocol):
    """A :class:`Reserving` executor that can tell, between plans, which of the jobs it holds
    its scheduler ended before they started (Slurm: a ``scancel`` of the pending job)."""

    def ended_held(
        self, held: Sequence[RunHandle], now: datetime
    ) -> dict[str, EndedUnstarted | Held]:
        """Of the held jobs ``held`` (each handle's ``token`` and owner ``uid``), those the
        scheduler ended unstarted, by job id; a job whose end it has not recorded yet is
        left out (asked again next time). One the executor found started as it stopped it (a
        job it refuses now that its scheduler started just before) is answered
        :class:`Held` (its token and ``started_at``): it ran, and :meth:`Executor.poll`
        reports its end."""
        ...


@runtime_checkable
class CapacityAware(Protocol):
    """An executor that knows more than the ledger about which of its GPUs are free."""

    def available(self, devices: Sequence[Device], now: datetime) -> list[Device]:
        """``devices`` with those of this executor's regions that are down or drained marked
        unavailable and those others hold marked busy (``busy_until``); others unchanged."""
        ...


@runtime_checkable
class Reporting(Protocol):
    """An executor that can be unwell without any one job failing (its scheduler down)."""

    def problems(self) -> Mapping[str, str]:
        """What is wrong with it now, by ``health.json`` key (e.g. ``slurm``), each a one-line
        message that stays the same while the problem lasts; empty when nothing is."""
        ...


@runtime_checkable
class Discovering(Protocol):
    """An executor that finds its regions' GPUs in its scheduler (Slurm: the partition's
    nodes), which may not have answered yet (down when the daemon started)."""

    def undiscovered(self) -> Mapping[str, str]:
        """The regions whose GPUs its scheduler did not answer for, each with why."""
        ...

    def rediscover(self, now: datetime) -> Mapping[str, Sequence[tuple[int, str]]]:
        """Ask again for the undiscovered regions' GPUs, as often as the scheduler's outage
        allows at ``now``; the regions found, each with its ``(index, GPU catalog name)``s."""
        ...


@runtime_checkable
class Sweeping(Protocol):
    """An executor that keeps something per run past the run's end until it can be removed
    (the local executor: a job's cgroup, whose processes may be slow to die), remembered in
    memory only: a restart forgets it."""

    def sweep(self, followed: Collection[str]) -> None:
        """At start, before :meth:`Executor.adopt`: remove what any run left that is not one
        of ``followed`` (the job ids of the runs the daemon follows on this executor)."""
        ...
