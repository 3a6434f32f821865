"""The daemon's own :class:`daemon.service.Service`, set up for replay.

A scratch state directory and ledger, the cluster's regions as settings (every region runs
jobs with the :class:`~daemon.executors.simulated.SimulatedExecutor`), intensity from
:class:`~daemon.replay.signals.ReplaySignals` behind the service's ``IntensityProvider`` seam,
and the policy under test. Jobs are submitted straight into the ledger (as ingestion would
record them) and everything else is the service's own steps at ``now`` (reconcile, refresh,
plan: :meth:`ServiceHarness.tick`): planning, dispatch, decisions and outcomes go through the
same code and tables as in production. No GPU measurement is attached, so measured outcomes
never recalibrate the planner's estimates (docs/policies.md, "Recalibration is not replayed").
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from daemon.executors.simulated import SimulatedExecutor
from daemon.intensity.providers import IntensityReading
from daemon.inventory import build_inventory
from daemon.ledger import Ledger
from daemon.queue.ingest import Queue
from daemon.queue.job_request import JobRequest
from daemon.replay.cluster import Cluster
from daemon.replay.signals import ReplaySignals
from daemon.service import Service
from daemon.settings import (
    IntensitySettings,
    IntervalSettings,
    PolicySettings,
    RegionSettings,
    Settings,
)
from daemon.sites import SiteView
from daemon.statedir import LEDGER_NAME
from daemon.states import FINAL_STATES, WAITING_STATES
from policies import (
    Alternative,
    Decision,
    Device,
    JobSpec,
    Policy,
    ZoneIntensity,
    with_plan_interval,
)
from policies.fast_init import fast_init

__all__ = ["ReplayIntensity", "Run", "ServiceHarness"]


@fast_init
@dataclass(frozen=True, slots=True)
class Run:
    """A dispatched job: when it ran and the decision's expected placement."""

    job: JobSpec
    started_at: datetime
    ends_at: datetime
    plan: Alternative
    reason: str


class ReplayIntensity:
    """The service's intensity seam over replay signals: forecasts from the past only
    (``actuals``: the realised series, for ``oracle``)."""

    def __init__(self, signals: ReplaySignals, actuals: bool) -> None:
        self._signals = signals
        self._actuals = actuals

    def refresh(self, zones: Iterable[str], now: datetime) -> object:
        """Nothing to fetch."""
        return None

    def forecast(self, zone: str, now: datetime, horizon_s: int, step_s: int) -> ZoneIntensity:
        """The forecast available at ``now`` (or the realised series)."""
        if self._actuals:
            return self._signals.actual(zone)
        return self._signals.forecast(zone, now, horizon_s)

    def current(self, zone: str, now: datetime) -> IntensityReading:
        """The realised value of the hour containing ``now``."""
        series = self._signals.actual(zone)
        return IntensityReading(zone, now, float(series.at(now)), "replay", rung="replay")


class _WatchedPolicy:
    """The policy under test, remembering the earliest planned start of a held job (so the
    replay clock can wake up then). Decisions pass through unchanged."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self.uses_actuals = bool(getattr(policy, "uses_actuals", False))
        self.next_start: datetime | None = None

    @property
    def name(self) -> str:
        return self._policy.name

    def plan(
        self,
        now: datetime,
        jobs: Sequence[JobSpec],
        devices: Sequence[Device],
        forecasts: Mapping[str, ZoneIntensity],
    ) -> list[Decision]:
        decisions = self._policy.plan(now, jobs, devices, forecasts)
        starts = [
            d.chosen.start
            for d in decisions
            if d.action == "hold" and d.chosen is not None and d.chosen.start > now
        ]
        self.next_start = min(starts, default=None)
        return decisions


def _request(job: JobSpec) -> JobRequest:
    w = job.workload
    return JobRequest(
        job_id=job.job_id, name=job.job_id, model=job.model.name, params_b=None,
        input_tokens=w.input_tokens, output_tokens=w.output_tokens, requests=w.requests,
        batch_size=w.batch_size, tensor_parallel=w.tensor_parallel, deadline=job.deadline,
        command=("true",), regions=job.regions, gpu_types=job.gpu_types,
        min_gpu_memory_gb=job.min_gpu_memory_gb, priority=job.priority, tags=("replay",),
        precision=w.precision, runtime=job.runtime,
    )  # fmt: skip


class ServiceHarness:
    """Replay's view of a :class:`Service`: ``submit``, ``tick(now)`` and the runs it made.

    Use as a context manager (it owns the scratch ledger).
    """

    def __init__(
        self, policy: Policy, cluster: Cluster, signals: ReplaySignals, state_dir: Path,
        tick_s: int, horizon_s: int, truth_factor: float = 1.0, duration_noise: float = 0.0,
        plan_window: int = 1_000,
    ) -> None:  # fmt: skip
        regions = tuple(
            RegionSettings(
                name=r.name,
                zone=r.zone,
                pue=r.pue,
                executor="simulated",
                gpus=r.gpu_names(),
                site=r.site,
            )
            for r in cluster.regions
        )
        settings = Settings(
            state_dir=state_dir, regions=regions, catalog=cluster.catalog,
            policy=PolicySettings(name=policy.name, plan_window=plan_window),
            intervals=IntervalSettings(plan_s=float(tick_s), refresh_s=3600.0),
            intensity=IntensitySettings(source="static", horizon_s=horizon_s, step_s=3600),
        )  # fmt: skip
        self._jobs: dict[str, JobSpec] = {}
        # planned every tick: its run-now copies start at ticks, as run-now's own runs do
        self._policy = _WatchedPolicy(with_plan_interval(policy, float(tick_s)))
        # Runs last truth_factor x their estimate (x log-normal noise): the estimator's error.
        self._executor = SimulatedExecutor(truth_factor=truth_factor, noise_sigma=duration_noise)
        self.ledger = Ledger.open(state_dir / LEDGER_NAME, durable=False, private=True)
        catalog = cluster.gpu_catalog  # the cluster file's types among them
        self.service = Service(
            settings=settings,
            ledger=self.ledger,
            queue=Queue(
                state_dir, self.ledger, known_regions=[r.name for r in regions], catalog=catalog
            ),
            executors={"simulated": self._executor},
            inventory=build_inventory(regions, catalog),
            catalog=catalog,
            intensity=ReplayIntensity(signals, self._policy.uses_actuals),
            policy=self._policy,
            sites=SiteView(cluster.sites()),  # the rows read with the cluster
        )
        self._started = False
        self._uid, self._gid = os.getuid(), os.getgid()  # the jobs' owner, as ingestion records it
        self._arrived: list[tuple[JobRequest, int, int, str, datetime]] = []

    def __enter__(self) -> ServiceHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the service and its ledger."""
        self.service.close()
        self.ledger.close()

    def submit(self, job: JobSpec) -> None:
        """Record ``job`` as ingested at its arrival (the jobs submitted before a tick are
        written in one transaction at its start, as ingestion writes a queue file's lines)."""
        self._jobs[job.job_id] = job
        self._arrived.append((_request(job), self._uid, self._gid, "replay", job.submitted_at))

    def _ingest(self) -> None:
        if self._arrived:
            with self.ledger.transaction():
                self.ledger.add_jobs(self._arrived)
            self._arrived = []

    def tick(self, now: datetime) -> None:
        """One round of the daemon at ``now``: the steps of :meth:`Service.tick` (which the
        live loop fires one by one), reconcile first, as there: runs that ended by ``now`` are
        reconciled before planning, so a GPU whose run ended at ``now`` is planned on at once.
        The queue files' step has nothing to do here and is not run (jobs are submitted
        straight into the ledger).
        """
        if not self._started:
            self.service.start(now)
            self._started = True
        self._ingest()
        service = self.service
        service.reconcile(now)
        if service.refresh_due(now):
            service.refresh_intensity(now)
        service.plan(now)

    @property
    def queued(self) -> int:
        """Jobs not yet started."""
        self._ingest()
        return sum(self.ledger.counts_by_state().get(s, 0) for s in WAITING_STATES)

    def waiting(self) -> list[str]:
        """Ids of the jobs not yet started, in arrival order."""
        self._ingest()
        return [job.job_id for job in self.ledger.jobs(WAITING_STATES)]

    @property
    def running(self) -> int:
        """Jobs running."""
        return self.ledger.counts_by_state().get("running", 0)

    def next_wakeup(self, now: datetime) -> datetime | None:
        """The next expected end of a running job or planned start of a held one."""
        executor = self._executor
        times = [
            executor.ends_at(run.token)  # a started run's token says when it ends
            if run.token
            else (run.started_at or run.launched_at)
            + timedelta(seconds=executor.duration_s(run.job_id, run.expected_duration_s))
            for run in self.ledger.active_runs()
        ]
        if self._policy.next_start is not None:
            times.append(self._policy.next_start)
        return min((t for t in times if t > now), default=None)

    def drain(self) -> None:
        """Nothing to do: runs are read from the ledger."""

    @property
    def rejected(self) -> list[str]:
        """Jobs that ended without running: refused (failed) or expired (their deadline passed
        before they could start)."""
        return [
            j.job_id
            for j in self.ledger.jobs(("failed", "expired"))
            if self.ledger.run(j.job_id) is None
        ]

    @property
    def finished(self) -> list[Run]:
        """Every run the service dispatched, with the decision that started it."""
        runs = []
        jobs, duration_s = self._jobs, self._executor.duration_s
        started_runs = self.ledger.started_runs((*FINAL_STATES, "running"))
        for run in sorted(started_runs, key=lambda r: (jobs[r.job_id].submitted_at, r.job_id)):
            job_id = run.job_id
            started, expected_s = run.started_at or run.launched_at, run.expected_duration_s
            true_s = duration_s(job_id, expected_s)
            ended = run.finished_at or started + timedelta(seconds=true_s)
            # Energy and embodied grams grow with the true run time (the estimated power).
            longer = true_s / expected_s if expected_s > 0 else 1.0
            plan = Alternative(
                run.device_ids, run.region or "", run.gpu or "", started,
                (ended - started).total_seconds(), _f(run.expected_energy_j) * longer,
                _f(run.expected_intensity_g_per_kwh), _f(run.expected_operational_g),
                _f(run.expected_embodied_g) * longer,
            )  # fmt: skip
            runs.append(Run(jobs[job_id], started, ended, plan, run.reason))
        return runs


def _f(value: Any) -> float:
    return float(value) if value is not None else 0.0
