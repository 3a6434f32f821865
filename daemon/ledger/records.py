"""Rows read back from the ledger, as frozen values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon.queue.job_request import JobRequest
from policies.fast_init import fast_init

__all__ = [
    "DecisionRecord",
    "EndedCounterfactual",
    "JobRecord",
    "LatestPlan",
    "QueueFileRecord",
    "RunRecord",
    "StartedRun",
    "TransitionRecord",
    "WaitingCounterfactual",
]


@fast_init
@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job. ``uid``/``gid``: the submitting user, from the file owner or the caller."""

    job_id: str
    uid: int
    gid: int
    name: str
    state: str
    priority: int
    submitted_at: datetime
    deadline: datetime | None
    request: JobRequest
    source: str
    updated_at: datetime
    cancel_requested_at: datetime | None


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One state change with its time and reason (``from_state`` None: creation)."""

    job_id: str
    from_state: str | None
    to_state: str
    at: datetime
    reason: str


@fast_init
@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A planning decision as recorded (grams are expected, not measured)."""

    job_id: str
    at: datetime
    policy: str
    action: str
    reason: str
    region: str | None
    gpu: str | None
    device_ids: tuple[str, ...]
    planned_start: datetime | None
    expected_duration_s: float | None
    expected_energy_j: float | None
    expected_intensity_g_per_kwh: float | None
    expected_operational_g: float | None
    expected_embodied_g: float | None
    expected_total_g: float | None
    run_now_total_g: float | None
    alternatives: tuple[dict[str, object], ...]


@dataclass(frozen=True, slots=True)
class LatestPlan:
    """What a job's latest decision planned (:meth:`daemon.ledger.Ledger.latest_plans`): its
    action, and the region, GPU and start of its chosen alternative (None: it chose none)."""

    action: str
    region: str | None
    gpu: str | None
    planned_start: datetime | None


@fast_init
@dataclass(frozen=True, slots=True)
class RunRecord:
    """A launched job. ``token`` None: the daemon died between recording and launching.
    ``deadline`` and ``uid``: its job's, as :meth:`~daemon.ledger.Ledger.active_runs` reads them
    for the executors (None: the job has no deadline, or the run was read without them)."""

    job_id: str
    executor: str
    token: str | None
    device_ids: tuple[str, ...]
    gpu_indices: tuple[int, ...]
    expected_duration_s: float
    launched_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    signal: int | None
    reason: str | None
    deadline: datetime | None = None
    uid: int | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class StartedRun:
    """A run whose job's latest decision is the ``start`` that launched it: the run's devices
    and times, and what that decision expected (the columns a replay's results read)."""

    job_id: str
    device_ids: tuple[str, ...]
    expected_duration_s: float
    launched_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    region: str | None
    gpu: str | None
    reason: str
    expected_energy_j: float | None
    expected_intensity_g_per_kwh: float | None
    expected_operational_g: float | None
    expected_embodied_g: float | None


@dataclass(frozen=True, slots=True)
class EndedCounterfactual:
    """An ended job's run-now counterfactual (``recorded``: as its first decision stored it)
    and how the job ended: its final ``state`` at ``ended_at``, when its owner asked to cancel
    it, its run's ``exit_code`` and ``signal``, and its outcome's ``duration_s`` and
    ``predicted_duration_s`` (None: no such run or outcome), and the job's ``deadline``."""

    job_id: str
    recorded: dict[str, Any]
    state: str
    ended_at: datetime
    cancel_requested_at: datetime | None
    exit_code: int | None
    signal: int | None
    duration_s: float | None
    predicted_duration_s: float | None
    deadline: datetime | None = None


@dataclass(frozen=True, slots=True)
class WaitingCounterfactual:
    """A waiting job's run-now counterfactual run as its first decision stored it (its
    ``device_ids``, ``start`` and ``duration_s``), when its owner asked to cancel the job
    (None: not asked) and its ``deadline``."""

    job_id: str
    device_ids: tuple[str, ...]
    start: datetime
    duration_s: float
    cancel_requested_at: datetime | None
    deadline: datetime | None


@dataclass(frozen=True, slots=True)
class QueueFileRecord:
    """How far a queue file has been ingested (``retired_at`` set: renamed by compaction).

    ``tail`` holds the last bytes before ``byte_offset`` (a file that no longer has them there
    was truncated or rewritten: it is read again from 0); ``skipping`` is true while the bytes
    from ``byte_offset`` on belong to an over-long line already rejected (skip to its newline).
    ``prefix_crc`` is the CRC-32 of the bytes before ``byte_offset`` (None: not known yet): a
    file with another inode but these bytes is the same file copied (a restored state dir).
    """

    path: str
    inode: int | None
    byte_offset: int
    line_no: int
    retired_at: datetime | None
    tail: bytes | None = None
    skipping: bool = False
    prefix_crc: int | None = None
