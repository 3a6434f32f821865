"""Fakes for tests and replay experiments: a clock and a recording executor.

Shipped in the package (as ``structlog.testing`` is) so tests of any part can build a
:class:`daemon.service.Service` without processes or GPUs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from daemon.errors import DaemonError
from daemon.executors.base import ExitStatus, LaunchSpec, NotStarted, RunHandle

__all__ = ["FakeClock", "RecordingExecutor"]


@dataclass(slots=True)
class FakeClock:
    """A settable aware-UTC clock: ``clock()`` reads it, ``advance(s)`` moves it on."""

    now: datetime = field(default_factory=lambda: datetime(2024, 6, 1, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by ``seconds``; returns the new time."""
        self.now += timedelta(seconds=seconds)
        return self.now

    def monotonic(self) -> Callable[[], float]:
        """A monotonic clock in seconds (as GPU backends and monitors take) that follows this
        one and reads 0 now."""
        start = self.now

        def seconds() -> float:
            return (self.now - start).total_seconds()

        return seconds


@dataclass(slots=True)
class _Job:
    spec: LaunchSpec
    started_at: datetime
    end_at: datetime | None
    exit_code: int | None = 0
    signal: int | None = None


class RecordingExecutor:
    """An :class:`~daemon.executors.base.Executor` that records every call.

    A launched job ends when ``now`` reaches ``started + expected_duration_s *
    duration_factor`` (``auto_finish``), or when :meth:`finish` says so. ``fail_launch`` and
    ``fail_poll`` make those calls raise. Reuse one instance across two services to model jobs that
    keep running while the daemon restarts. With ``reported_power_w`` set, each ended job reports
    that power times its run time as its energy, flagged ``reported_method`` (an executor with
    its own energy accounting, as Slurm's ``sacct``).
    """

    def __init__(
        self, name: str = "local", *, duration_factor: float = 1.0, auto_finish: bool = True
    ) -> None:
        self._name = name
        self.duration_factor = duration_factor
        self.auto_finish = auto_finish
        self.fail_launch = False
        self.fail_poll = False
        self.reported_power_w: float | None = None
        self.reported_method = "slurm-sacct"
        self.launches: list[LaunchSpec] = []
        self.cancels: list[str] = []
        self.adopted: list[str] = []
        self._jobs: dict[str, _Job] = {}
        self._reported: set[str] = set()

    @property
    def name(self) -> str:
        return self._name

    def launch(self, spec: LaunchSpec, now: datetime) -> RunHandle:
        if self.fail_launch:
            raise DaemonError(f"job {spec.job_id}: launch refused by the test")
        if spec.job_id in self._jobs:
            raise AssertionError(f"job {spec.job_id} launched twice")
        self.launches.append(spec)
        end = (
            now + timedelta(seconds=spec.expected_duration_s * self.duration_factor)
            if self.auto_finish
            else None
        )
        self._jobs[spec.job_id] = _Job(spec, now, end)
        return RunHandle(spec.job_id, self._name, f"rec-{spec.job_id}", now)

    def finish(self, job_id: str, at: datetime, exit_code: int | None = 0) -> None:
        """Make ``job_id`` end at ``at`` with ``exit_code``."""
        job = self._jobs[job_id]
        job.end_at, job.exit_code = at, exit_code

    def poll(self, handles: Sequence[RunHandle], now: datetime) -> list[ExitStatus]:
        if self.fail_poll:
            raise DaemonError("poll refused by the test")
        ended = []
        for handle in handles:
            job = self._jobs.get(handle.job_id)
            if job is None or job.end_at is None or job.end_at > now:
                continue
            if handle.job_id in self._reported:
                raise AssertionError(f"job {handle.job_id} polled after it was reported")
            self._reported.add(handle.job_id)
            energy_j = None
            if self.reported_power_w is not None:
                run_s = (job.end_at - job.started_at).total_seconds()
                energy_j = self.reported_power_w * run_s
            method = None if energy_j is None else self.reported_method
            ended.append(ExitStatus(handle.job_id, job.end_at, job.exit_code, job.signal,
                                    energy_j=energy_j, energy_method=method))  # fmt: skip
        return ended

    def cancel(self, handle: RunHandle, now: datetime) -> None:
        self.cancels.append(handle.job_id)
        job = self._jobs[handle.job_id]
        if job.end_at is None or job.end_at > now:  # one that ended already stays as it ended
            job.end_at, job.exit_code, job.signal = now, None, 15

    def adopt(self, handles: Sequence[RunHandle], now: datetime) -> list[RunHandle | ExitStatus]:
        out: list[RunHandle | ExitStatus] = []
        for handle in handles:
            self.adopted.append(handle.job_id)
            job = self._jobs.get(handle.job_id)
            if job is None:
                out.append(NotStarted(handle.job_id, now, None, None, "never started"))
            elif job.end_at is not None and job.end_at <= now:
                self._reported.add(handle.job_id)
                out.append(ExitStatus(handle.job_id, job.end_at, job.exit_code, job.signal))
            else:
                token = handle.token or f"rec-{handle.job_id}"
                out.append(RunHandle(handle.job_id, self._name, token, job.started_at))
        return out

    def running(self) -> list[str]:
        """Ids of jobs launched and not yet ended by ``now``-independent state."""
        return [j for j, job in self._jobs.items() if j not in self._reported]
