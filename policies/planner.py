"""The spatio-temporal planner behind ``carbon-window``, ``wait-awhile`` and ``oracle``.

One call plans the whole queue afresh (re-planning every tick is simply calling it again;
with a :class:`~policies.incremental.PlanState` the same answers come faster, from rows kept
between ticks and a compiled greedy, except for the look-ahead LP's rounds):

1. Score every (job, pool, slot) over the horizon (:func:`policies.scoring.score`), with a
   latest safe start per (job, pool) = deadline - duration x (1 + ``duration_margin``) -
   ``guard_s``, and a planning cost that leans towards the forecast's pessimistic bound by
   ``risk_aversion``.
2. Take jobs in order (priority; then those whose latest safe start is within ``urgent_s``,
   most urgent first; then the others by regret, largest first: the grams a job loses if its
   cheapest pool goes to another, so a scarce clean pool goes to the jobs that save most on
   it) and give each the cheapest (pool, slot) whose devices the capacity timeline
   (:mod:`policies.capacity`) still has free for the whole run; the cost of a slot rises by
   ``herd_penalty`` x its used share, so jobs do not all pile into one green hour. A held
   job keeps its plan (:attr:`~policies.types.JobSpec.planned`) while that cell is free and
   costs at most ``replan_margin`` more than the cheapest: plans do not trade cells of almost
   the same cost from tick to tick (each move is a stored decision and, on Slurm, a command).
   One job's choice, steps 2 to 4: :func:`policies.greedy_reference.choose` (compiled:
   :mod:`policies.greedy`).
3. Hold only when the plan beats starting now by more than ``min_saving`` (forecast error makes
   small gains unreliable).
4. A job with no slot left before its latest safe starts takes the cheapest start the devices
   allow that still ends by its deadline with the duration margin, else the one that ends
   soonest (waiting a few minutes for a fast GPU beats running late on a free slow one); if
   none ends in time in its allowed pools, it may go to any admissible pool (even under
   ``home_only``).
5. A plan for slot 0 starts on concrete free devices. Started jobs carry the best placement of
   each of the next-cheapest pools as alternatives; held jobs carry their plan and the run-now
   counterfactual (every job's, the round's jobs claiming GPUs first come, first served as
   ``run-now`` would: :mod:`policies.run_now_claims`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from policies.candidates import unfit_reason
from policies.capacity import CapacityTimeline
from policies.decisions import alternative_at, best_alternatives, free_devices, run_now_alternative
from policies.estimates import estimate_matrix
from policies.footprint.accounting import DEFAULT_LIFETIME_YEARS
from policies.footprint.estimator import Estimate
from policies.footprint.recalibration import Recalibration
from policies.greedy import GreedyInputs, assign, assign_weighted
from policies.greedy_reference import NOTES, Tick, choose
from policies.lookahead import Rounding, plan_round
from policies.near_ties import TOLERANCE as _TOLERANCE
from policies.parameters import LIFETIME_CHECK, Check, check_fields
from policies.reasons import hold_reason, latest_text, saving, start_reason, waiting_reason
from policies.run_now_claims import run_now_cells
from policies.scoring import Pool, SlotGrid, make_pools, score, seconds_to_deadline, typical_g
from policies.types import Decision, Device, JobSpec, ZoneIntensity

if TYPE_CHECKING:
    from policies.incremental import PlanState

__all__ = ["WindowParameters", "allowed_pairs", "plan_window", "planned_cells", "planning_order"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class WindowParameters:
    """Tunable parameters of the window planner (see the module docstring).

    ``slot_s`` x ``horizon_slots`` is the look-ahead; ``guard_s`` should be at least the
    planning tick; ``home_only`` restricts each job to its first-listed region; the cost cube
    is built ``chunk_jobs`` jobs at a time (most urgent first) to bound memory.
    """

    slot_s: int = 900
    horizon_slots: int = 96
    duration_margin: float = 0.25
    guard_s: float = 900.0
    risk_aversion: float = 0.5
    herd_penalty: float = 0.05
    min_saving: float = 0.2  # chosen by `carbond tune` on May 2023, see docs/policies.md
    replan_margin: float = 0.0  # keep a held job's plan unless a cell this much cheaper is free
    urgent_s: float = 3600.0  # ditto; inf: plan every job in urgency order
    lifetime_years: float = DEFAULT_LIFETIME_YEARS
    home_only: bool = False
    alternatives: int = 3
    chunk_jobs: int = 1024
    lookahead: bool = False  # assign the queue jointly by an LP (policies.lookahead)
    lookahead_max_cells: int = 200_000  # larger LPs: plan greedily

    def validate(self) -> None:
        """Raises PoliciesError naming the first parameter of the wrong type or out of range."""
        check_fields(self, _CHECKS)


# Written so that NaN fails; inf only where it means "none" (urgent_s).
_CHECKS: tuple[Check, ...] = (
    ("slot_s", lambda v: 0 < v <= 86_400, "more than 0 and at most 86400"),
    ("horizon_slots", lambda v: 1 <= v <= 10_000, "1 to 10000"),  # the cube's last axis
    ("duration_margin", lambda v: 0 <= v < math.inf, "0 or more, finite"),
    ("guard_s", lambda v: 0 <= v < math.inf, "0 or more, finite"),
    ("risk_aversion", lambda v: 0 <= v <= 1, "0 to 1"),
    ("herd_penalty", lambda v: 0 <= v < math.inf, "0 or more, finite"),
    ("min_saving", lambda v: 0 <= v < 1, "0 or more and below 1"),
    ("replan_margin", lambda v: 0 <= v < 1, "0 or more and below 1"),
    ("urgent_s", lambda v: v >= 0, "0 or more (inf: every job by urgency)"),
    LIFETIME_CHECK,
    ("alternatives", lambda v: v >= 0, "0 or more"),
    ("chunk_jobs", lambda v: v >= 1, "1 or more"),
    ("lookahead_max_cells", lambda v: v >= 1, "1 or more"),
)


def planned_cells(
    jobs: Sequence[JobSpec], pools: Sequence[Pool], grid: SlotGrid
) -> tuple[IntArray, IntArray]:
    """Each job's plan (:attr:`JobSpec.planned`) as a (pool, slot) of ``grid``, ``(-1, -1)``
    where it has none: no plan, its pool is gone, or its start is not a later slot of this
    grid (the start has come, or it is off the slot boundaries or past the horizon)."""
    pool = np.full(len(jobs), -1, dtype=np.int64)
    slot = np.full(len(jobs), -1, dtype=np.int64)
    index = {(p.region, p.gpu.name): k for k, p in enumerate(pools)}
    for j, job in enumerate(jobs):
        plan = job.planned
        if plan is None:
            continue
        p = index.get((plan.region, plan.gpu))
        s, rest = divmod((plan.start - grid.start).total_seconds(), grid.step_s)
        if p is not None and rest == 0 and 1 <= s < grid.count:
            pool[j], slot[j] = p, int(s)
    return pool, slot


def _joint(params: WindowParameters, cells: int) -> bool:
    """Whether the look-ahead LP assigns a queue of ``cells`` (job, pool, slot) cells."""
    return params.lookahead and cells <= 4 * params.lookahead_max_cells


def allowed_pairs(
    jobs: Sequence[JobSpec], pools: Sequence[Pool], ok: npt.NDArray[np.bool_], home_only: bool
) -> npt.NDArray[np.bool_]:
    """The (job, pool) pairs a job may be planned on: admissible, and its home under
    ``home_only`` (the first region it lists)."""
    if not home_only:
        return ok
    regions = np.array([pool.region for pool in pools], dtype=object)
    mask = ok.copy()
    for j, job in enumerate(jobs):
        if job.regions:
            mask[j] &= regions == job.regions[0]
    return mask


def _regret(typical: FloatArray) -> FloatArray:
    """Grams each job loses if its cheapest pool is taken: second-cheapest - cheapest
    (``inf`` with a single admissible pool, 0 with none)."""
    padded = np.concatenate((typical, np.full((len(typical), 2), np.inf)), axis=1)
    ranked = np.partition(padded, 1, axis=1)  # the two cheapest first, in order (NaN last)
    with np.errstate(invalid="ignore"):  # inf - inf: no admissible pool
        regret = ranked[:, 1] - ranked[:, 0]
    result: FloatArray = np.where(np.isnan(regret), 0.0, regret)
    return result


def planning_order(
    jobs: Sequence[JobSpec], duration: FloatArray, ok: npt.NDArray[np.bool_], now: datetime,
    params: WindowParameters, regret: FloatArray,
    keys: tuple[FloatArray, FloatArray, npt.NDArray[np.int64]] | None = None,
) -> list[int]:  # fmt: skip
    """Job indices in planning order: priority first; then the jobs whose latest safe start
    (any pool) is within ``urgent_s``, most urgent first; then the others by ``regret``,
    largest first (the jobs that lose most if a scarce clean pool goes to another).

    ``keys``: the jobs' seconds from ``now`` to their deadlines (``inf``: none), submission
    timestamps and negated priorities, when the caller keeps them (the same values)."""
    if keys is None:
        keys = (
            seconds_to_deadline(jobs, now),
            np.array([j.submitted_at.timestamp() for j in jobs]),
            np.array([-j.priority for j in jobs], dtype=np.int64),
        )  # fmt: skip
    deadline, submitted, priority = keys
    with np.errstate(invalid="ignore"):  # no deadline (inf) and an OOM pool (inf duration)
        latest = deadline[:, None] - duration * (1.0 + params.duration_margin) - params.guard_s
    latest = np.where(ok & ~np.isnan(latest), latest, -np.inf).max(axis=1, initial=-np.inf)
    # Jobs without a deadline start as soon as possible but yield free GPUs to deadline jobs.
    latest = np.where(np.isinf(deadline), np.inf, latest)
    relaxed = latest > params.urgent_s
    loss = np.where(relaxed, -regret, 0.0)
    # Sorted by (-priority, relaxed, loss, latest, submitted_at, job_id), stably. The ids
    # only break ties of all the other keys: without such ties the order is the same unsorted
    # by them (a pair counts as tied on a key unless one is less: NaN ties conservatively).
    columns = (submitted, latest, loss, relaxed, priority)
    order = np.lexsort(columns)
    tied = np.ones(max(len(order) - 1, 0), dtype=np.bool_)
    for column in columns:
        ranked = column[order]
        tied &= ~((ranked[:-1] < ranked[1:]) | (ranked[1:] < ranked[:-1]))
    if tied.any():
        ids = np.array([j.job_id for j in jobs], dtype=np.str_)
        order = np.lexsort((ids, *columns))
    result: list[int] = order.tolist()
    return result


def _rounding(tick: Tick, params: WindowParameters, gpus: IntArray) -> Rounding:
    """:func:`choose` for each job in turn on a capacity timeline of the look-ahead's (it
    tries several plans), compiled: :func:`policies.greedy.assign` without the LP's weights,
    :func:`~policies.greedy.assign_weighted` with them (the same cells, notes and
    reservations; tests compare them)."""
    cube, cost = tick.cube, tick.cost
    mean = np.ascontiguousarray(cube.intensity_g_per_kwh)
    left_s = seconds_to_deadline(cube.jobs, cube.grid.start)
    inputs = GreedyInputs(
        cost, np.ascontiguousarray(cost[:, :, 0]), mean, np.ascontiguousarray(mean[:, :, 0]),
        np.ascontiguousarray(cube.energy_j), np.array([p.pue for p in cube.pools]),
        np.ascontiguousarray(cube.embodied_g), cost.min(axis=2, initial=np.inf),
        np.ascontiguousarray(cube.latest_start_s), np.ascontiguousarray(tick.allowed),
        np.ascontiguousarray(cube.admissible), np.ascontiguousarray(cube.duration_s), left_s,
        gpus,
    )  # fmt: skip

    def rounding(
        capacity: CapacityTimeline, order: Sequence[int], weights: FloatArray | None
    ) -> list[tuple[int, int, int, str]]:
        rows = np.array(order, dtype=np.int64)
        if weights is None:
            planned = tick.planned[0][rows], tick.planned[1][rows]
            pool, slot, note = assign(
                rows, inputs, capacity, params.herd_penalty, params.min_saving, _TOLERANCE,
                params.duration_margin, planned, params.replan_margin,
            )  # fmt: skip
        else:
            pool, slot, note = assign_weighted(
                rows, inputs, np.ascontiguousarray(weights), capacity, params.herd_penalty,
                params.min_saving, _TOLERANCE, params.duration_margin,
            )  # fmt: skip
        return [(k, p, s, NOTES[n]) for k, p, s, n in zip(
            order, pool.tolist(), slot.tolist(), note.tolist(), strict=True
        )]  # fmt: skip

    return rounding


def _decide(tick: Tick, j: int, p: int, s: int, note: str, policy: str, limit: int) -> Decision:
    cube = tick.cube
    job = cube.jobs[j]
    run_now = run_now_alternative(cube, j, tick.run_now.get(j), tick.forecasts)
    plan = alternative_at(cube, j, p, s)
    quoted = saving(plan, run_now)
    if s > 0:
        latest_txt = latest_text(cube.grid.start, float(cube.latest_start_s[j, p]))
        start_txt = plan.start.isoformat(timespec="minutes")
        reason = hold_reason(plan, start_txt, quoted, latest_txt, job)
        return Decision(job.job_id, "hold", reason, policy, plan, run_now)
    need = job.workload.tensor_parallel
    free = free_devices(cube.pools[p], tick.now, tick.taken)
    if len(free) < need:  # only when every admissible pool is over-committed
        return Decision(job.job_id, "hold", waiting_reason(plan), policy, plan, run_now)
    chosen = free[:need]
    tick.taken.update(d.device_id for d in chosen)
    alt = alternative_at(cube, j, p, 0, chosen)
    others = best_alternatives(cube, j, tick.cost[j], p, limit)
    return Decision(job.job_id, "start", start_reason(alt, quoted, note), policy, alt, run_now,
                    others)  # fmt: skip


def plan_window(
    policy: str,
    now: datetime,
    jobs: Sequence[JobSpec],
    devices: Sequence[Device],
    forecasts: Mapping[str, ZoneIntensity],
    params: WindowParameters,
    cache: dict[tuple[object, ...], Estimate] | None = None,
    recalibration: Recalibration | None = None,
    state: PlanState | None = None,
    round_s: float | None = None,
) -> list[Decision]:
    """Plan every job jointly over devices, regions and start slots (see module docstring).

    With ``state`` (the rows kept from earlier ticks, :mod:`policies.incremental`), the same
    decisions come from the fast path (but a held decision repeated from the last tick, which
    keeps the run-now counterfactual it was built with), except for the look-ahead LP's rounds
    and a queue with two jobs of one id (rows are kept by id), which plan here. ``round_s``:
    the caller's planning interval, at whose rounds the run-now copies start
    (:mod:`policies.run_now_claims`; None: when their GPUs free up).

    Raises:
        MissingForecastError: a device's zone has no forecast.
    """
    if not jobs:
        return []
    cache = {} if cache is None else cache
    grid = SlotGrid.aligned(now, params.slot_s, params.horizon_slots)
    pools = make_pools(devices)
    fast = state is not None and not _joint(params, len(jobs) * len(pools) * grid.count)
    if fast and state is not None and len({job.job_id for job in jobs}) == len(jobs):
        return state.plan(
            policy, now, jobs, devices, forecasts, params, cache, recalibration, round_s
        )
    duration, energy, ok = estimate_matrix(jobs, pools, cache, recalibration)
    allowed = allowed_pairs(jobs, pools, ok, params.home_only)
    typical = typical_g(jobs, pools, forecasts, grid, (duration, energy, ok), params.lifetime_years)
    regret = _regret(np.where(allowed, typical, np.inf))
    order = planning_order(jobs, duration, ok, now, params, regret)
    longest = np.where(ok, duration, 0.0).max(initial=0.0)
    capacity = CapacityTimeline(pools, grid, int(np.ceil(longest / params.slot_s)) + 1)
    taken: set[str] = set()
    decisions: dict[int, Decision] = {}
    run_now = run_now_cells(pools, grid, jobs, duration, ok, round_s)  # the round's, FIFO
    joint = _joint(params, len(jobs) * len(pools) * grid.count)
    step = len(order) if joint else params.chunk_jobs
    for first in range(0, len(order), step):
        chunk = order[first : first + step]
        cube = score(
            [jobs[j] for j in chunk], pools, forecasts, grid,
            lifetime_years=params.lifetime_years, duration_margin=params.duration_margin,
            guard_s=params.guard_s, risk_aversion=params.risk_aversion,
            estimates=(duration[chunk], energy[chunk], ok[chunk]),
        )  # fmt: skip
        cost = np.where(allowed[chunk][:, :, None], cube.planning_g, np.inf)
        plans = planned_cells(cube.jobs, pools, grid)
        cells = {k: run_now[j] for k, j in enumerate(chunk) if j in run_now}
        tick = Tick(cube, cost, capacity, allowed[chunk], now, taken, plans, forecasts, cells)
        locals_ = list(range(len(chunk)))
        planned: dict[int, tuple[int, int, str]] = {}
        if joint:  # the cheaper of the greedy and the LP-rounded plan (policies.lookahead)
            gpus = np.array([jobs[j].workload.tensor_parallel for j in chunk], dtype=np.int64)
            fits = [k for k in locals_ if ok[chunk[k]].any()]
            grams = cube.operational_g + cube.embodied_g[:, :, None]
            room_s = np.where(allowed[chunk], cube.latest_start_s, -np.inf).max(
                axis=1, initial=-np.inf
            )  # no pool at all (no GPU configured): every job is rejected below
            relaxed = room_s - grid.first_offset_s > params.urgent_s
            round_plan = plan_round(
                cost, grams, cube.duration_s, gpus, capacity, fits, _rounding(tick, params, gpus),
                relaxed=relaxed, min_saving=params.min_saving,
                deadline_s=seconds_to_deadline(cube.jobs, grid.start),
                margin=params.duration_margin,
                levels=np.array([jobs[j].priority for j in chunk], dtype=np.int64),
                max_cells=params.lookahead_max_cells,
            )  # fmt: skip
            planned = {k: (p, s, note) for k, p, s, note in round_plan.cells}
            locals_ = [k for k, _, _, _ in round_plan.cells] + [
                k for k in locals_ if k not in planned
            ]
        for local in locals_:
            j = chunk[local]
            if not ok[j].any():
                reason = unfit_reason(jobs[j], devices)
                decisions[j] = Decision(jobs[j].job_id, "reject", reason, policy)
                continue
            # Under home_only a job whose home cannot run it has no allowed cell: it takes
            # the rescue path (any admissible pool) instead of being rejected.
            p, s, note = planned[local] if joint else choose(tick, local, params)
            decisions[j] = _decide(tick, local, p, s, note, policy, params.alternatives)
    return [decisions[j] for j in range(len(jobs))]
