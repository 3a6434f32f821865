"""The best schedule on a grid of start instants: a time-indexed integer program (HiGHS MIP).

Where :mod:`policies.bound` relaxes (a fraction of a job may run, capacity counted in
GPU-seconds over windows), this solves the assignment itself, offline (every job known from
the start) on the given intensity (the realised one in replay):

- a binary ``x[j, p, t]`` per job, pool and start instant ``t`` on a grid of ``grid_s`` seconds
  with ``arrival <= t`` and ``t + duration <= deadline``; each job takes exactly one;
- its exact grams at that start (operational on the mean intensity over the run, plus embodied);
- per pool and grid instant ``u``, the devices of the runs covering ``u`` (``t <= u < t +
  duration``) at most the pool's devices. Runs start only at grid instants, so the number in
  use rises only there: these rows keep the schedule within the devices at every instant.

Its optimum is a schedule that meets every deadline within the devices (so the true optimum
is at most it), and HiGHS's dual bound is a lower bound for every schedule whose starts lie on
the grid. With the LP bound of :mod:`policies.bound` below and this above, the true optimum is
bracketed: what separates a policy from the LP bound splits into the relaxation's own gap
(this minus the LP bound, at most) and the policy's (the policy minus this).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from policies.bound import NO_DEADLINE_S, BoundError, cell_grams
from policies.estimates import EstimateCache, estimate_matrix
from policies.footprint.accounting import DEFAULT_LIFETIME_YEARS
from policies.means import mean_intensities
from policies.scoring import Pool, make_pools, seconds_to_deadline
from policies.types import Device, JobSpec, ZoneIntensity

__all__ = ["GRID_S", "IntegerOptimum", "OptimalStart", "integer_optimum"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

GRID_S = 300.0  # starts every five minutes (``carbond replay --optimum``)


@dataclass(frozen=True, slots=True)
class OptimalStart:
    """One job of the best schedule: where and when it starts, for how long, its grams there
    and how long it waited after arriving."""

    job_id: str
    region: str
    zone: str
    gpu: str
    start: datetime
    duration_s: float
    wait_s: float
    total_g: float


@dataclass(frozen=True, slots=True)
class IntegerOptimum:
    """The MIP's result: ``total_g`` of the best schedule found (None: none within the time
    limit, or no schedule fits), ``dual_g`` HiGHS's lower bound for grid schedules, and
    ``optimal`` whether the two met (within ``mip_rel_gap``); ``infeasible`` whether HiGHS
    proved that no schedule fits; ``schedule`` the best schedule's starts, in job order (empty
    where none was found)."""

    total_g: float | None
    dual_g: float
    optimal: bool
    jobs: int
    unschedulable: tuple[str, ...]
    grid_s: float
    variables: int
    constraints: int
    schedule: tuple[OptimalStart, ...] = ()
    infeasible: bool = False


@dataclass(frozen=True, slots=True)
class _Starts:
    """The MIP's variables: one per (job, pool, grid start), with its grams."""

    job: IntArray
    pool: IntArray
    start: IntArray  # grid instants after the origin
    duration_s: FloatArray
    gpus: FloatArray
    cost_g: FloatArray
    origin: datetime


def _starts(
    jobs: Sequence[JobSpec], devices: Sequence[Device], actuals: Mapping[str, ZoneIntensity],
    grid_s: float, lifetime_years: float, duration_factor: float, cache: EstimateCache | None,
) -> _Starts:  # fmt: skip
    pools = make_pools(devices)
    duration, energy, ok = estimate_matrix(jobs, pools, cache)
    duration, energy = duration * duration_factor, energy * duration_factor
    first_arrival = min(j.submitted_at for j in jobs)
    origin = datetime.fromtimestamp(
        first_arrival.timestamp() // grid_s * grid_s, tz=first_arrival.tzinfo
    )
    arrival = np.array([(j.submitted_at - origin).total_seconds() for j in jobs])
    deadline = seconds_to_deadline(jobs, origin)
    jj, pp = np.nonzero(ok)
    earliest = np.ceil(arrival[jj] / grid_s - 1e-9).astype(np.int64)
    latest_s = np.minimum(deadline[jj], arrival[jj] + NO_DEADLINE_S) - duration[jj, pp]
    latest = np.floor(latest_s / grid_s + 1e-9).astype(np.int64)
    counts = np.maximum(latest - earliest + 1, 0)
    job = np.repeat(jj, counts)
    pool = np.repeat(pp, counts)
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    start = np.repeat(earliest, counts) + within
    d = duration[job, pool]
    tp = np.array([j.workload.tensor_parallel for j in jobs], dtype=np.float64)

    def at_start(series: ZoneIntensity, rows: npt.NDArray[np.bool_]) -> FloatArray:
        values = np.asarray(series.values_g_per_kwh, dtype=np.float64)
        offset = (series.start - origin).total_seconds()
        return mean_intensities(values, float(series.step_s), offset, start[rows] * grid_s, d[rows])

    cost = cell_grams(pools, actuals, pool, d, energy[job, pool], tp[job], lifetime_years, at_start)
    return _Starts(job, pool, start, d, tp[job], cost, origin)


def integer_optimum(
    jobs: Sequence[JobSpec],
    devices: Sequence[Device],
    actuals: Mapping[str, ZoneIntensity],
    *,
    grid_s: float = GRID_S,
    time_limit_s: float = 300.0,
    mip_rel_gap: float = 1e-4,
    lifetime_years: float = DEFAULT_LIFETIME_YEARS,
    duration_factor: float = 1.0,
    cache: EstimateCache | None = None,
) -> IntegerOptimum:
    """The best schedule of ``jobs`` on ``devices`` with starts on a ``grid_s`` grid (module
    docstring). Jobs that cannot meet their deadline alone on the grid are left out.

    Raises:
        BoundError: a zone has no intensity, or HiGHS failed.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    if not jobs or not devices:
        return IntegerOptimum(0.0, 0.0, True, 0, (), grid_s, 0, 0)
    cells = _starts(jobs, devices, actuals, grid_s, lifetime_years, duration_factor, cache)
    placed = set(cells.job.tolist())
    unschedulable = tuple(j.job_id for i, j in enumerate(jobs) if i not in placed)
    if not placed:
        return IntegerOptimum(0.0, 0.0, True, 0, unschedulable, grid_s, 0, 0)
    n = len(cells.job)
    cover = np.maximum(np.ceil(cells.duration_s / grid_s - 1e-9).astype(np.int64), 1)
    col = np.repeat(np.arange(n), cover)
    instant = cells.start[col] + (
        np.arange(int(cover.sum())) - np.repeat(np.cumsum(cover) - cover, cover)
    )  # the grid instants each run covers
    base = int(cells.start.min())
    span = int(instant.max()) - base + 1
    keys, row = np.unique(cells.pool[col] * span + (instant - base), return_inverse=True)
    pools = make_pools(devices)
    sizes = np.array([pool.size for pool in pools], dtype=np.float64)
    capacity = coo_matrix((cells.gpus[col], (row, col)), shape=(len(keys), n)).tocsr()
    _, job_row = np.unique(cells.job, return_inverse=True)
    one_each = coo_matrix((np.ones(n), (job_row, np.arange(n))), shape=(len(placed), n)).tocsr()
    result = milp(
        cells.cost_g,
        constraints=[
            LinearConstraint(capacity, -np.inf, sizes[keys // span]),
            LinearConstraint(one_each, 1.0, 1.0),
        ],
        integrality=np.ones(n),
        bounds=Bounds(0.0, 1.0),
        options={"time_limit": time_limit_s, "mip_rel_gap": mip_rel_gap, "disp": False},
    )
    if result.status not in (0, 1, 2):  # optimal, a limit reached, infeasible
        raise BoundError(f"HiGHS MIP: {result.message}")
    found = result.x is not None and result.status in (0, 1)
    total = float(result.fun) if found else None
    dual = getattr(result, "mip_dual_bound", None)
    dual_g = float(dual) if dual is not None else (total if result.status == 0 else math.nan)
    schedule = _schedule(jobs, pools, cells, result.x, grid_s) if found else ()
    return IntegerOptimum(total, float(dual_g if dual_g is not None else math.nan),
                          result.status == 0, len(placed), unschedulable, grid_s, n,
                          len(keys) + len(placed), schedule, result.status == 2)  # fmt: skip


def _schedule(
    jobs: Sequence[JobSpec], pools: Sequence[Pool], cells: _Starts, x: FloatArray, grid_s: float
) -> tuple[OptimalStart, ...]:
    """The chosen start of each placed job (the binaries HiGHS set, within its tolerance)."""
    out = []
    for i in sorted(np.flatnonzero(x > 0.5), key=lambda i: int(cells.job[i])):
        job, pool = jobs[int(cells.job[i])], pools[int(cells.pool[i])]
        start = cells.origin + timedelta(seconds=float(cells.start[i]) * grid_s)
        out.append(OptimalStart(job.job_id, pool.region, pool.zone, pool.gpu.name, start,
                                float(cells.duration_s[i]),
                                (start - job.submitted_at).total_seconds(),
                                float(cells.cost_g[i])))  # fmt: skip
    return tuple(out)
