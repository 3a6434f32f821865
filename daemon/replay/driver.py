"""The replay driver: jobs, a cluster and intensity traces through the daemon's tick loop.

For each policy the daemon's own :class:`~daemon.service.Service` is built on a scratch ledger
(:mod:`daemon.replay.harness`) with the simulated executor; at every tick of a simulated clock
the jobs that have arrived are submitted and the service's round runs
(:meth:`~daemon.replay.harness.ServiceHarness.tick`). Planning sees
forecasts made only from the past (``oracle``: the realised intensity); accounting uses the
realised intensity over each run, through :mod:`policies.footprint.accounting` (at regions
with a site, only grid energy: :mod:`daemon.replay.sites` splits it first). After the
last arrival the clock runs on until every job has finished.

The simulated clock ticks every ``tick_s`` as the daemon does, but skips ticks at which nothing
can change: it jumps to the next tick at or after the earliest of the next arrival, the next
run end, the next planned start of a held job, the next hourly forecast update and
``max_gap_s`` (ticks in between would see the same queue, devices and forecasts).
"""

from __future__ import annotations

import contextlib
import gc
import math
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from daemon.replay.cluster import Cluster
from daemon.replay.errors import ReplayError, ReplayInputError
from daemon.replay.harness import Run, ServiceHarness
from daemon.replay.signals import ReplaySignals
from daemon.replay.sites import SiteRecord, account_sites
from forecasts import IntensitySeries
from policies import JobSpec, Policy, get_policy
from policies.fast_init import fast_init
from policies.footprint.accounting import DEFAULT_LIFETIME_YEARS, operational_g
from policies.means import mean_intensities

__all__ = ["JobOutcome", "PolicyRun", "ReplaySetup", "replay_policy"]

Progress = Callable[[datetime], None]


@dataclass(frozen=True, slots=True)
class ReplaySetup:
    """Everything a replay needs besides the policy."""

    jobs: tuple[JobSpec, ...]
    cluster: Cluster
    signals: ReplaySignals
    start: datetime
    end: datetime
    tick_s: int = 60
    max_gap_s: int = 3600
    horizon_s: int = 24 * 3600
    lifetime_years: float = DEFAULT_LIFETIME_YEARS
    truth_factor: float = 1.0  # true run time / estimate
    duration_noise: float = 0.0  # log-normal sigma of per-job run-time error
    plan_window: int = 1_000  # the daemon's `[policy] plan_window`: waiting jobs planned per round
    notes: tuple[str, ...] = ()  # data problems in the input files that were worked around

    @property
    def ticks(self) -> int:
        """Ticks over the replayed span (draining may add more)."""
        return math.ceil((self.end - self.start).total_seconds() / self.tick_s)

    def actuals(self) -> dict[str, IntensitySeries]:
        """The realised intensity of each of the cluster's zones."""
        return {zone: self.signals.actual(zone) for zone in self.cluster.zones()}


@fast_init
@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What happened to one job, accounted on the realised intensity."""

    job_id: str
    arrival: datetime
    deadline: datetime | None
    region: str
    zone: str
    gpu: str
    started_at: datetime
    ended_at: datetime
    energy_j: float
    planned_intensity_g_per_kwh: float
    intensity_g_per_kwh: float
    operational_g: float
    embodied_g: float
    # Facility energy (GPU energy x PUE) by source: all grid where the region has no site.
    grid_j: float = 0.0
    pv_j: float = 0.0
    battery_j: float = 0.0

    @property
    def total_g(self) -> float:
        """Operational + embodied grams."""
        return self.operational_g + self.embodied_g

    @property
    def offset(self) -> float:
        """Share of the job's facility energy covered on site (PV + battery)."""
        total = self.grid_j + self.pv_j + self.battery_j
        return (self.pv_j + self.battery_j) / total if total else 0.0

    @property
    def wait_s(self) -> float:
        """Seconds from arrival to start."""
        return (self.started_at - self.arrival).total_seconds()

    @property
    def missed_deadline(self) -> bool:
        """True when the job ended after its deadline."""
        return self.deadline is not None and self.ended_at > self.deadline


@dataclass(frozen=True, slots=True)
class PolicyRun:
    """The outcome of replaying one policy."""

    policy: str
    params: Mapping[str, Any]
    outcomes: tuple[JobOutcome, ...]
    rejected: int
    unfinished: int  # still running when the replay stopped; in ``outcomes`` to their simulated end
    sites: tuple[SiteRecord, ...] = ()  # each site's flows (PV, battery, load) over the replay


def _account(setup: ReplaySetup, runs: Sequence[Run]) -> list[JobOutcome]:
    """Realised grams of every run: intensity means vectorised per zone; embodied grams are
    the plan's (a simulated run lasts its estimated duration); the facility energy all grid
    (:func:`daemon.replay.sites.account_sites` splits it at site regions)."""
    pue = {r.name: r.pue for r in setup.cluster.regions}
    zones = {r.name: r.zone for r in setup.cluster.regions}
    intensity = np.zeros(len(runs))
    by_zone: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        by_zone.setdefault(zones[run.plan.region], []).append(i)
    for zone, index in by_zone.items():
        actual = setup.signals.actual(zone)
        starts = np.array([(runs[i].started_at - actual.start).total_seconds() for i in index])
        durations = np.array([runs[i].plan.duration_s for i in index])
        intensity[index] = mean_intensities(
            actual.values_g_per_kwh, actual.step_s, 0.0, starts, durations
        )
    outcomes = []
    for i, run in enumerate(runs):
        plan = run.plan
        outcomes.append(
            JobOutcome(
                run.job.job_id, run.job.submitted_at, run.job.deadline, plan.region,
                zones[plan.region], plan.gpu, run.started_at, run.ends_at, plan.energy_j,
                plan.intensity_g_per_kwh,
                float(intensity[i]),
                float(operational_g(plan.energy_j, float(intensity[i]), pue[plan.region])),
                plan.embodied_g, grid_j=plan.energy_j * pue[plan.region],
            )
        )  # fmt: skip
    return outcomes


def _next_tick(
    setup: ReplaySetup, now: datetime, arrival: datetime | None, wakeup: datetime | None
) -> datetime:
    hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    events = [now + timedelta(seconds=setup.max_gap_s), hour]
    events += [t for t in (arrival, wakeup) if t is not None]
    since = (min(events) - setup.start).total_seconds()
    ticks = max(math.ceil(since / setup.tick_s - 1e-9), 1)
    candidate = setup.start + timedelta(seconds=ticks * setup.tick_s)
    return max(candidate, now + timedelta(seconds=setup.tick_s))


def _wakeup(
    setup: ReplaySetup, service: ServiceHarness, now: datetime, arrival: datetime | None
) -> datetime | None:
    """The service's next wakeup (:meth:`ServiceHarness.next_wakeup`), or None when the next
    arrival is within a tick: the clock then moves one tick whatever the wakeup
    (:func:`_next_tick` never moves less), and reading the running jobs is not needed."""
    if arrival is not None and arrival <= now + timedelta(seconds=setup.tick_s):
        return None
    return service.next_wakeup(now)


def _data_end(setup: ReplaySetup) -> tuple[str, datetime]:
    """The zone whose realised intensity ends first, and that end (exclusive)."""
    actuals = setup.actuals()
    zone = min(actuals, key=lambda z: actuals[z].end)
    return zone, actuals[zone].end


def _why(job: JobSpec) -> str:
    if job.deadline is None:
        return "it has no deadline"
    return f"its deadline {job.deadline:%Y-%m-%d %H:%M}"


def _refuse_waiting_past_data(
    setup: ReplaySetup, name: str, service: ServiceHarness, now: datetime, data_end: datetime
) -> None:
    """Refuse a replay whose jobs still wait at ``now``, past the end of a zone's intensity:
    a job without a deadline (a ledger's) may wait past the last deadline, which is all
    :meth:`ReplaySignals.covers` asks of the files. Until 2026-12-06 such jobs started on no
    forecast ("intensity_refresh_failed" every hour of every zone), were accounted at the
    files' last hour, or waited two more days to fail as "still queued".

    Raises:
        ReplayInputError: naming the first such job, the zone and where its intensity ends.
    """
    if now < data_end:
        return
    zone, _ = _data_end(setup)
    jobs = {job.job_id: job for job in setup.jobs}
    late = [i for i in service.waiting() if (d := jobs[i].deadline) is None or d > now]
    if late:
        more = f" and {len(late) - 1:,} more" if len(late) > 1 else ""
        raise ReplayInputError(
            f"{name}: job {late[0]}{more} still waiting at {now:%Y-%m-%d %H:%M} "
            f"({_why(jobs[late[0]])}), when the intensity of {zone} ends: give --intensity "
            "files that reach further, or replay a shorter span"
        )


def _refuse_runs_past_data(setup: ReplaySetup, name: str, runs: Sequence[Run]) -> None:
    """Refuse a replay with a run that ends past its zone's intensity (it would be accounted
    at the files' last hour, without a word, as until 2026-12-06).

    Raises:
        ReplayInputError: naming the first such job, its region and zone.
    """
    zones = {r.name: r.zone for r in setup.cluster.regions}
    actuals = setup.actuals()
    ends = {region: actuals[zone].end for region, zone in zones.items()}  # once per region
    late = [r for r in runs if r.ends_at > ends[r.plan.region]]
    if late:
        run, more = late[0], f" and {len(late) - 1:,} more" if len(late) > 1 else ""
        zone = zones[run.plan.region]
        raise ReplayInputError(
            f"{name}: job {run.job.job_id}{more} runs in {run.plan.region} until "
            f"{run.ends_at:%Y-%m-%d %H:%M} ({_why(run.job)}), past the intensity of {zone} "
            f"(to {actuals[zone].end:%Y-%m-%d %H:%M}): give --intensity files that reach "
            "further, or replay a shorter span"
        )


@contextlib.contextmanager
def _setup_frozen() -> Iterator[None]:
    """The objects alive before the replay (the setup: jobs, signals, imported modules) kept
    out of the garbage collector's full passes while it runs (``gc.freeze``): a week's
    hundreds of thousands of them were traversed by every full pass (~1 s of a 30 s
    replay). Nothing is frozen when the caller froze objects itself."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def replay_policy(
    setup: ReplaySetup,
    name: str,
    params: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    state_dir: Path | None = None,
) -> PolicyRun:
    """Replay ``setup`` under the policy ``name`` with ``params``; the scratch ledger goes
    in a temporary directory, or in ``state_dir`` (kept) when given.

    Raises:
        UnknownPolicyError, PoliciesError: a bad policy name or parameter.
        ReplayError: the replay did not finish within two days after its span or, later,
            its last deadline.
        ReplayInputError: a job waits, or a run lasts, past the end of a zone's intensity
            (a job without a deadline, or a run longer than its deadline allowed).
    """
    params = dict(params or {})
    policy: Policy = get_policy(name, **params)
    jobs = sorted(setup.jobs, key=lambda j: j.submitted_at)
    last = max((j.deadline for j in jobs if j.deadline is not None), default=setup.end)
    limit = max(setup.end, last) + timedelta(days=2)  # a slack past the span may hold jobs
    _, data_end = _data_end(setup)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_setup_frozen())
        if state_dir is None:
            state_dir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="carbond-replay-"))
            )
        service = ServiceHarness(policy, setup.cluster, setup.signals, state_dir,
                                 setup.tick_s, setup.horizon_s, setup.truth_factor,
                                 setup.duration_noise, setup.plan_window)  # fmt: skip
        with service:
            now, k = setup.start, 0
            while now <= limit:
                while k < len(jobs) and jobs[k].submitted_at <= now:
                    service.submit(jobs[k])
                    k += 1
                service.tick(now)
                if progress is not None:
                    progress(now)
                if k == len(jobs) and service.queued == 0 and now >= setup.end:
                    break
                _refuse_waiting_past_data(setup, name, service, now, data_end)
                arrival = jobs[k].submitted_at if k < len(jobs) else None
                now = _next_tick(setup, now, arrival, _wakeup(setup, service, now, arrival))
            if service.queued:
                raise ReplayError(
                    f"{name}: {service.queued} jobs still queued two days after the span "
                    "and the last deadline"
                )
            unfinished = service.running
            runs = service.finished
            _refuse_runs_past_data(setup, name, runs)
            rejected = len(service.rejected)
    outcomes, sites = account_sites(setup, _account(setup, runs))
    outcomes.sort(key=lambda o: (o.arrival, o.job_id))
    return PolicyRun(policy.name, params, tuple(outcomes), rejected, unfinished, sites)
