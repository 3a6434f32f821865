"""A lower bound on the grams of any schedule: the LP relaxation of the whole assignment.

Every job goes to one (pool, start) with its duration, energy and embodied cost on that pool's
GPU type, starts no earlier than its arrival, ends by its deadline, and the pools' devices
bound how much runs at once. The relaxation, solved with HiGHS (``scipy.optimize.linprog``):

- **Start slots**: a variable ``x[j, p, k]`` per job, pool and ``slot_s``-long start slot ``k``
  in which the job may start (some instant of the slot is at or after its arrival and no later
  than ``deadline - duration``); ``sum_{p, k} x[j, p, k] = 1``, ``x >= 0``.
- **Cost**: the *least* grams over every start instant the slot allows, on the intensity given
  (the realised one in replay). The mean intensity over a run is piecewise linear in its start
  between the instants where the start or the end crosses a step of the series, so the minimum
  is at one of those instants or at an end of the slot's interval, and is found exactly.
- **Capacity**: for every pool, every window of ``L`` consecutive slots (``L`` in
  ``window_lengths``, default 1 to 32 slots by powers of two) and every window start, the
  GPU-seconds that the runs spend in the window
  are at most ``devices x L x slot_s``. A run's GPU-seconds in a window are counted at their
  least over the starts its slot allows (the overlap is unimodal in the start, so the least is
  at an end of the interval). Any schedule that keeps within the devices at every instant
  keeps within these sums. And per pool and slot boundary ``u``, the devices of the runs that
  cover ``u`` from every start their slot allows (``hi <= u < lo + duration``) are at most the
  pool's. Longer windows tighten the bound (a run's GPU-seconds are counted
  whole in a window that holds it from any start in its slot): on 5 June 2023 at 4 h slack
  (343 jobs, paper cluster) lengths 1-8 give 1,232 g, 1-32 give 1,382 g, and twelve lengths up
  to 96 give 1,419 g for twice the solve time.

So every schedule that meets every deadline within the devices, at any start instants (the
replay's ticks included), is a feasible point of the LP with at most its grams: the LP's
optimum is never above the true optimum. A job that cannot meet its deadline even alone is left
out and counted in :attr:`LowerBound.unschedulable`.

**Windows**: when the LP is too large (more than ``max_cells`` variables) the jobs are split by
arrival into windows of ``window_s`` and each window is solved alone, its capacity rows counting
only its own jobs. Each window's rows are then weaker than the whole LP's (a subset of the jobs
in each sum), so the sum of the windows' optima is still a lower bound, only a looser one:
much looser where runs cross a window's end (one day of the paper cluster at 12 h slack counts
its T4s again for the jobs of the next day; two days of June 2023: 1,817 g in two windows
against 2,507 g for the one LP). So with windows the whole span's LP is also bounded through
its Lagrangian dual (:mod:`policies.lagrangian`: the capacity rows priced, every job then on
its cheapest cell, climbed by subgradient steps; every step's value is a valid bound, and
their limit is the whole LP's optimum), which needs no solver and no more memory than the
rows themselves (the same two days: 2,483 g after 600 steps). The larger of the two is the
bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from policies.bound_rows import BoundCells, capacity_rows, rows_of
from policies.errors import PoliciesError
from policies.estimates import EstimateCache, estimate_matrix
from policies.footprint.accounting import DEFAULT_LIFETIME_YEARS, embodied_g, operational_g
from policies.lagrangian import lagrangian_bound
from policies.means import mean_intensities
from policies.scoring import Pool, make_pools
from policies.types import Device, JobSpec, ZoneIntensity

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

__all__ = [
    "NO_DEADLINE_S",
    "BoundError",
    "BoundInfeasibleError",
    "LowerBound",
    "cell_grams",
    "lower_bound",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NO_DEADLINE_S = 2 * 86400.0  # a job without a deadline may start this long after arrival
# HiGHS's default (presolve, then dual simplex) ended "model status Unknown" on one day-window
# of the June week at 12 h slack (53,861 variables); without presolve it solved in about the
# same time, the interior point method in 4x. So each LP is tried in this order.
_ATTEMPTS: tuple[tuple[str, dict[str, object]], ...] = (
    ("highs", {}),
    ("highs", {"presolve": False}),
    ("highs-ipm", {}),
)


class BoundError(PoliciesError):
    """The bound's LP could not be solved."""


class BoundInfeasibleError(BoundError):
    """The bound's LP has no solution: no schedule of the jobs keeps within the devices and
    meets every deadline (an overloaded cluster), so there is no bound to give."""


@dataclass(frozen=True, slots=True)
class LowerBound:
    """The LP bound: ``total_g`` over the jobs that can meet their deadlines alone."""

    total_g: float
    jobs: int
    unschedulable: tuple[str, ...]
    windows: int
    window_s: float | None  # None: one LP over the whole span
    variables: int
    constraints: int
    # with windows: their optima's sum, and the whole span's Lagrangian dual bound
    # (policies.lagrangian) after ``dual_steps`` steps (None: too large to climb);
    # ``total_g`` is the larger
    windows_g: float | None = None
    dual_g: float | None = None
    dual_steps: int = 0


def _cells(
    jobs: Sequence[JobSpec], pools: Sequence[Pool], origin: datetime, slot_s: float,
    estimates: tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]],
) -> tuple[IntArray, IntArray, IntArray, FloatArray, FloatArray]:  # fmt: skip
    """(job, pool, slot, lo, hi) of every start slot each job may use on each pool."""
    duration, _, ok = estimates
    arrival = np.array([(j.submitted_at - origin).total_seconds() for j in jobs])
    longest = np.where(ok, duration, 0.0).max(axis=1, initial=0.0)
    deadline = np.array(
        [
            arrival[i] + NO_DEADLINE_S + longest[i]
            if j.deadline is None
            else (j.deadline - origin).total_seconds()
            for i, j in enumerate(jobs)
        ]
    )
    jj, pp = np.nonzero(ok)
    release = arrival[jj]
    latest = deadline[jj] - duration[jj, pp]
    keep = latest >= release
    jj, pp, release, latest = jj[keep], pp[keep], release[keep], latest[keep]
    first = np.floor(release / slot_s).astype(np.int64)
    last = np.floor(latest / slot_s).astype(np.int64)
    counts = last - first + 1
    job = np.repeat(jj, counts)
    pool = np.repeat(pp, counts)
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    slot = np.repeat(first, counts) + within
    lo = np.maximum(slot * slot_s, np.repeat(release, counts))
    hi = np.minimum((slot + 1) * slot_s, np.repeat(latest, counts))
    return job, pool, slot, lo.astype(np.float64), hi.astype(np.float64)


def _least_mean_intensity(
    series: ZoneIntensity, origin: datetime, lo: FloatArray, hi: FloatArray, d: FloatArray
) -> FloatArray:
    """The least mean intensity over ``[t, t + d]`` for ``t`` in ``[lo, hi]``, exactly: at
    ``lo``, ``hi`` or an instant where ``t`` or ``t + d`` crosses a step of the series."""
    values = np.asarray(series.values_g_per_kwh, dtype=np.float64)
    step = float(series.step_s)
    offset = (series.start - origin).total_seconds()
    candidates = [lo, hi]
    crossings = math.ceil(float(np.max(hi - lo, initial=0.0)) / step) + 1
    for shift in (np.zeros_like(d), d):  # the start, then the end crossing a step
        first = offset + (np.floor((lo + shift - offset) / step) + 1.0) * step - shift
        for m in range(crossings):
            candidates.append(np.clip(first + m * step, lo, hi))
    best = np.full(lo.shape, np.inf)
    for t in candidates:
        np.minimum(best, mean_intensities(values, step, offset, t, d), out=best)
    return best


def cell_grams(
    pools: Sequence[Pool], actuals: Mapping[str, ZoneIntensity], cell_pool: IntArray,
    duration_s: FloatArray, energy_j: FloatArray, gpus: FloatArray, lifetime_years: float,
    intensity: Callable[[ZoneIntensity, npt.NDArray[np.bool_]], FloatArray],
) -> FloatArray:  # fmt: skip
    """Operational + embodied grams of every cell (a run of ``duration_s`` and ``energy_j`` on
    ``gpus`` devices of pool ``cell_pool``), the intensity of a pool's cells being
    ``intensity(series, rows)`` over that pool's zone's realised series.

    Raises:
        BoundError: a pool's zone has no realised intensity.
    """
    cost = np.zeros(len(cell_pool))
    for p, spec in enumerate(pools):
        rows = cell_pool == p
        if not rows.any():
            continue
        if spec.zone not in actuals:
            raise BoundError(f"no intensity for zone {spec.zone!r}")
        op = operational_g(energy_j[rows], intensity(actuals[spec.zone], rows), spec.pue)
        emb = embodied_g(duration_s[rows], spec.gpu.embodied_g * gpus[rows], lifetime_years)
        cost[rows] = op + emb
    return cost


def _costs(
    jobs: Sequence[JobSpec], pools: Sequence[Pool], actuals: Mapping[str, ZoneIntensity],
    origin: datetime, cells: tuple[IntArray, IntArray, IntArray, FloatArray, FloatArray],
    estimates: tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]], lifetime_years: float,
) -> BoundCells:  # fmt: skip
    job, pool, slot, lo, hi = cells
    duration, energy, _ = estimates
    d = duration[job, pool]
    tp = np.array([jobs[j].workload.tensor_parallel for j in range(len(jobs))], dtype=np.float64)
    gpus = tp[job]

    def least(series: ZoneIntensity, rows: npt.NDArray[np.bool_]) -> FloatArray:
        return _least_mean_intensity(series, origin, lo[rows], hi[rows], d[rows])

    cost = cell_grams(pools, actuals, pool, d, energy[job, pool], gpus, lifetime_years, least)
    return BoundCells(job, pool, slot, lo, hi, d, cost, gpus)


def _solve(
    cells: BoundCells, index: IntArray, sizes: IntArray, slot_s: float,
    window_lengths: Sequence[int], whole: tuple[csr_matrix, FloatArray] | None = None,
) -> tuple[float, int, int]:  # fmt: skip
    """The LP over the cells ``index``: (optimum, variables, constraints); ``whole``: the
    capacity rows of all the cells, when built already."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    n = len(index)
    if n == 0:
        return 0.0, 0, 0
    if whole is None:
        a_ub, b_ub = capacity_rows(cells, index, sizes, slot_s, window_lengths)
    else:
        a_ub, b_ub = rows_of(whole, index)
    _, job_row = np.unique(cells.job[index], return_inverse=True)
    n_jobs = int(job_row.max()) + 1
    a_eq = coo_matrix((np.ones(n), (job_row, np.arange(n))), shape=(n_jobs, n)).tocsr()
    messages, infeasible = [], False
    for method, options in _ATTEMPTS:
        result = linprog(
            cells.cost_g[index], A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=np.ones(n_jobs),
            bounds=(0, None), method=method, options=options,
        )  # fmt: skip
        if result.status == 0:
            return float(result.fun), n, len(b_ub) + n_jobs
        messages.append(f"{method} {options}: {result.message}")
        infeasible = infeasible or result.status == 2
    if infeasible:
        raise BoundInfeasibleError(
            "no schedule of the jobs keeps within the devices and meets every deadline "
            "(HiGHS: the LP is infeasible)"
        )
    raise BoundError("HiGHS: " + "; ".join(messages))


def lower_bound(
    jobs: Sequence[JobSpec],
    devices: Sequence[Device],
    actuals: Mapping[str, ZoneIntensity],
    *,
    slot_s: float = 900.0,
    window_lengths: Sequence[int] = (1, 2, 4, 8, 16, 32),
    lifetime_years: float = DEFAULT_LIFETIME_YEARS,
    duration_factor: float = 1.0,
    window_s: float | None = None,
    max_cells: int = 100_000,
    dual_steps: int = 1_000,
    max_dual_cells: int = 1_000_000,
    cache: EstimateCache | None = None,
) -> LowerBound:
    """The LP lower bound on the grams of running ``jobs`` on ``devices`` (module docstring).

    ``duration_factor`` scales every estimate's duration and energy (runs that last longer than
    estimated). ``window_s`` splits the jobs by arrival (None: one LP, or one-day windows when
    it would have more than ``max_cells`` variables); with more than one window the bound is
    also climbed over the whole span's Lagrangian dual (up to ``dual_steps`` steps) and is the
    larger of the two, unless the span has more than ``max_dual_cells`` variables (the rows
    of the whole span are built at once: ~60 coefficients a variable at 12 h of slack; the
    June week's 378,000 variables peaked at 2.2 GB for the whole ``carbond replay``).

    Raises:
        BoundInfeasibleError: no schedule meets every deadline within the devices.
        BoundError: HiGHS did not reach an optimum, or a zone has no intensity.
        ValueError: ``window_s`` is not a positive number of seconds.
    """
    if window_s is not None and not window_s > 0:
        raise ValueError(f"window_s must be more than 0 seconds, got {window_s!r}")
    pools = make_pools(devices)
    if not jobs or not pools:
        return LowerBound(0.0, 0, (), 0, window_s, 0, 0)
    duration, energy, ok = estimate_matrix(jobs, pools, cache)
    estimates = (duration * duration_factor, energy * duration_factor, ok)
    first = min(j.submitted_at for j in jobs)
    origin = datetime.fromtimestamp(first.timestamp() // slot_s * slot_s, tz=first.tzinfo)
    cells = _costs(jobs, pools, actuals, origin, _cells(jobs, pools, origin, slot_s, estimates),
                   estimates, lifetime_years)  # fmt: skip
    placed = set(cells.job.tolist())
    unschedulable = tuple(j.job_id for i, j in enumerate(jobs) if i not in placed)
    sizes = np.array([pool.size for pool in pools], dtype=np.int64)
    if window_s is None and len(cells.job) > max_cells:
        window_s = 86400.0
    arrival = np.array([(j.submitted_at - origin).total_seconds() for j in jobs])
    group = (
        np.zeros(len(jobs), dtype=np.int64)
        if window_s is None
        else np.floor(arrival / window_s).astype(np.int64)
    )
    total, variables, constraints = 0.0, 0, 0
    windows = np.unique(group[cells.job])
    whole = None  # the whole span's rows, for its dual: each window's are read from them
    if len(windows) > 1 and len(cells.job) <= max_dual_cells:
        whole = capacity_rows(cells, np.arange(len(cells.job)), sizes, slot_s, window_lengths)
    for w in windows:
        index = np.nonzero(group[cells.job] == w)[0]
        value, n_vars, n_rows = _solve(cells, index, sizes, slot_s, window_lengths, whole)
        total, variables, constraints = total + value, variables + n_vars, constraints + n_rows
    if len(windows) == 1:
        return LowerBound(total, len(placed), unschedulable, 1, window_s, variables, constraints)
    if whole is None:  # its rows would not fit in memory: the windows alone
        return LowerBound(total, len(placed), unschedulable, len(windows), window_s, variables,
                          constraints, windows_g=total)  # fmt: skip
    dual = lagrangian_bound(cells.cost_g, cells.job, *whole, max_steps=dual_steps)
    return LowerBound(max(total, dual.value), len(placed), unschedulable, len(windows), window_s,
                      variables, constraints, windows_g=total, dual_g=dual.value,
                      dual_steps=dual.steps)  # fmt: skip
