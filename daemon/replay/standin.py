"""A minimal stand-in for the daemon's ``Service`` with a simulated executor.

TEMPORARY: ``daemon/service.py`` (``Service.tick(now)``) and
``daemon/executors/simulated.py`` are being built on other branches. Until they are on
``main`` the replay drives this class, which keeps the same contract: ``submit`` queues a job,
``tick(now)`` ends the runs whose simulated end has passed, gives the policy the queued jobs,
the devices with their busy-until times and a forecast per zone, and starts what the policy
says to start (a run lasts its estimated duration, as the simulated executor's default).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from policies import Alternative, Decision, Device, JobSpec, Policy, ZoneIntensity

__all__ = ["Run", "StandInService"]

Forecasts = Callable[[datetime], Mapping[str, ZoneIntensity]]


@dataclass(frozen=True, slots=True)
class Run:
    """A started job: where, when, and what the planner expected."""

    job: JobSpec
    started_at: datetime
    ends_at: datetime
    plan: Alternative
    reason: str


class StandInService:
    """Queue, plan, start, finish: the loop of the daemon without I/O (see module docstring)."""

    def __init__(self, policy: Policy, devices: Sequence[Device], forecasts: Forecasts) -> None:
        self._policy = policy
        self._devices = tuple(devices)
        self._forecasts = forecasts
        self._queue: dict[str, JobSpec] = {}
        self._running: dict[str, Run] = {}
        self._planned: dict[str, datetime] = {}
        self.finished: list[Run] = []
        self.rejected: list[Decision] = []

    @property
    def queued(self) -> int:
        """Jobs waiting to start."""
        return len(self._queue)

    @property
    def running(self) -> int:
        """Jobs started and not yet finished."""
        return len(self._running)

    def submit(self, job: JobSpec) -> None:
        """Queue ``job`` (idempotent by ``job_id``)."""
        self._queue.setdefault(job.job_id, job)

    def tick(self, now: datetime) -> None:
        """Finish ended runs, plan the queue and start what the policy starts."""
        for job_id, run in list(self._running.items()):
            if run.ends_at <= now:
                self.finished.append(self._running.pop(job_id))
        if not self._queue:
            return
        busy: dict[str, datetime] = {}
        for run in self._running.values():
            for device_id in run.plan.device_ids:
                busy[device_id] = run.ends_at
        devices = [replace(d, busy_until=busy.get(d.device_id)) for d in self._devices]
        decisions = self._policy.plan(
            now, list(self._queue.values()), devices, self._forecasts(now)
        )
        self._planned.clear()
        for decision in decisions:
            if decision.action == "hold" and decision.chosen is not None:
                self._planned[decision.job_id] = decision.chosen.start
            if decision.action == "start" and decision.chosen is not None:
                job = self._queue.pop(decision.job_id)
                end = now + timedelta(seconds=decision.chosen.duration_s)
                self._running[job.job_id] = Run(job, now, end, decision.chosen, decision.reason)
            elif decision.action == "reject":
                self._queue.pop(decision.job_id)
                self.rejected.append(decision)

    def next_wakeup(self, now: datetime) -> datetime | None:
        """The next time after ``now`` at which a run ends or a held job's plan starts."""
        times = [run.ends_at for run in self._running.values()]
        times += [t for t in self._planned.values() if t > now]
        return min(times, default=None)

    def drain(self) -> None:
        """Count every running job as finished (at the end of a replay)."""
        self.finished.extend(self._running.values())
        self._running.clear()
