"""The simulated executor: jobs that end when the (simulated) clock passes their end.

Used by replay and the demo, so both run without processes or GPUs. A job's true duration is

    duration_s = estimated_duration_s * truth_factor * noise

where ``estimated_duration_s`` is the estimator's duration before any learned recalibration
factor (``LaunchSpec.raw_duration_s``; the planner's ``expected_duration_s`` when none is in
use), so that a daemon learning ``truth_factor`` from measured runs converges to it instead of
compounding it into every later launch.

where ``noise`` is log-normal with ``sigma = noise_sigma`` (1 when ``noise_sigma`` is 0) and is
drawn from a generator seeded by ``(seed, job_id)``: the same seed gives the same durations
whatever the order of launches. A fraction ``failure_rate`` of jobs (also per-job seeded) ends
with exit code 1. Everything a run needs is in its token, so :meth:`adopt` works across
restarts and the executor holds no state that matters beyond pending cancels.
"""

from __future__ import annotations

import functools
import hashlib
import json
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from daemon.executors.base import ExitStatus, LaunchSpec, NotStarted, RunHandle
from daemon.executors.errors import ExecutorError
from daemon.isotime import isoformat
from policies.fast_init import fast_init

__all__ = ["SimulatedExecutor"]


@fast_init
@dataclass(frozen=True, slots=True)
class _Run:
    ends_at: datetime
    exit_code: int


class SimulatedExecutor:
    """Deterministic, process-free executor.

    Args:
        truth_factor: true duration / expected duration (e.g. 1.2: the estimator is 20 % low).
        noise_sigma: log-normal sigma of per-job noise on the duration (0: none).
        failure_rate: probability in [0, 1] that a job exits with code 1.
        seed: seeds every per-job draw.
        min_duration_s: floor on a job's duration, in seconds.

    Raises:
        ExecutorError: a parameter out of range.
    """

    def __init__(
        self,
        *,
        truth_factor: float = 1.0,
        noise_sigma: float = 0.0,
        failure_rate: float = 0.0,
        seed: int = 0,
        min_duration_s: float = 1.0,
    ) -> None:
        if truth_factor <= 0:
            raise ExecutorError(f"simulated executor: truth_factor must be > 0, got {truth_factor}")
        if noise_sigma < 0:
            raise ExecutorError(f"simulated executor: noise_sigma must be >= 0, got {noise_sigma}")
        if not 0.0 <= failure_rate <= 1.0:
            raise ExecutorError(f"simulated executor: failure_rate not in [0, 1]: {failure_rate}")
        self._truth = truth_factor
        self._sigma = noise_sigma
        self._failure_rate = failure_rate
        self._seed = seed
        self._min_s = min_duration_s
        self._cancelled: dict[str, datetime] = {}
        self._noises: dict[str, float] = {}  # drawn per job (the same each time it is drawn)

    @property
    def name(self) -> str:
        return "simulated"

    def duration_s(self, job_id: str, expected_duration_s: float) -> float:
        """The true duration of ``job_id`` given the planner's estimate, in seconds."""
        noise = self._noise(job_id) if self._sigma else 1.0
        return max(self._min_s, expected_duration_s * self._truth * noise)

    def _noise(self, job_id: str) -> float:
        """``job_id``'s log-normal factor, drawn once (a replay asks at its launch, at every
        tick while it runs and at the end; each draw seeds a generator from a SHA-256)."""
        noise = self._noises.get(job_id)
        if noise is None:
            if len(self._noises) >= _NOISES_KEPT:
                self._noises.clear()
            noise = self._noises[job_id] = float(self._rng(job_id).lognormal(0.0, self._sigma))
        return noise

    def _rng(self, job_id: str) -> np.random.Generator:
        digest = hashlib.sha256(f"{self._seed}:{job_id}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def launch(self, spec: LaunchSpec, now: datetime) -> RunHandle:
        """Start the job at ``now``; it ends after :meth:`duration_s` of its raw estimate."""
        raw_s = spec.raw_duration_s
        duration = self.duration_s(
            spec.job_id, spec.expected_duration_s if raw_s is None else raw_s
        )
        fails = self._failure_rate > 0 and self._rng(spec.job_id + "/exit").random() < (
            self._failure_rate
        )
        ends_at = isoformat(now + timedelta(seconds=duration))
        # json.dumps({"ends_at": ends_at, "exit_code": 0 or 1}): an ISO time needs no escapes
        token = f'{{"ends_at": "{ends_at}", "exit_code": {1 if fails else 0}}}'
        self._cancelled.pop(spec.job_id, None)
        return RunHandle(spec.job_id, self.name, token, now)

    def ends_at(self, token: str) -> datetime:
        """When the run :meth:`launch` returned ``token`` for ends (unless cancelled): its
        start plus :meth:`duration_s`.

        Raises:
            ExecutorError: not a simulated run's token.
        """
        try:
            return _parse(token).ends_at
        except (ValueError, KeyError, TypeError) as exc:
            raise ExecutorError("unreadable simulated run token") from exc

    def poll(self, handles: Sequence[RunHandle], now: datetime) -> list[ExitStatus]:
        """The jobs whose end is at or before ``now`` (or that were cancelled)."""
        ended = []
        for handle in handles:
            status = self._status(handle, now)
            if status is not None:
                ended.append(status)
        return ended

    def _status(self, handle: RunHandle, now: datetime) -> ExitStatus | None:
        cancelled_at = self._cancelled.get(handle.job_id)
        run = _decode(handle)
        if run.ends_at <= now and (cancelled_at is None or run.ends_at <= cancelled_at):
            self._cancelled.pop(handle.job_id, None)
            return ExitStatus(handle.job_id, run.ends_at, run.exit_code)
        if cancelled_at is not None:
            del self._cancelled[handle.job_id]
            return ExitStatus(handle.job_id, cancelled_at, None, int(signal.SIGTERM), "cancelled")
        return None

    def cancel(self, handle: RunHandle, now: datetime) -> None:
        """The job ends at ``now`` with SIGTERM (reported by the next :meth:`poll`)."""
        self._cancelled.setdefault(handle.job_id, now)

    def adopt(self, handles: Sequence[RunHandle], now: datetime) -> list[RunHandle | ExitStatus]:
        """Each handle still running at ``now``, or its status if it ended meanwhile.

        A handle with an empty token (the daemon stopped before recording it) never started:
        a simulated run exists only in its token. The service queues such a job again.
        """
        return [
            (self._status(handle, now) or handle)
            if handle.token
            else NotStarted(handle.job_id, now, None, None, "never started: no simulated token")
            for handle in handles
        ]


_NOISES_KEPT = 100_000  # the per-job factors kept (~10 MB); drawn again after a clear


def _decode(handle: RunHandle) -> _Run:
    try:
        return _parse(handle.token)
    except (ValueError, KeyError, TypeError) as exc:
        raise ExecutorError(f"job {handle.job_id}: unreadable simulated run token") from exc


@functools.lru_cache(maxsize=4096)
def _parse(token: str) -> _Run:
    """A token's run (every poll reads every running job's token: parsed once each)."""
    raw = json.loads(token)
    return _Run(datetime.fromisoformat(raw["ends_at"]), int(raw["exit_code"]))
