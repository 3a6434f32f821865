"""The planner's fast path: scored rows kept between ticks, the greedy compiled.

:func:`policies.planner.plan_window` re-plans the whole queue every tick; most of what it
computes does not change from one tick to the next. :class:`PlanState` keeps, per queued job,
what the scorer gave it (estimates, latest safe starts, the planning cost and mean intensity of
every (pool, slot)) for as long as nothing it depends on changes: the pools (GPU types,
regions, PUE, which devices are available), the grid's slots, the forecasts of the pools'
zones, the parameters and the recalibration factors in use (:mod:`policies.kept_context`).
A tick then

- scores only the jobs it has not seen (in chunks of ``chunk_jobs``), and slot 0 for every job
  (slot 0 starts *now*, so it moves every tick), in one compiled pass over the rows with the
  jobs' regrets (:mod:`policies.now_cells`);
- orders the jobs as the reference does (priority, urgency, regret: a few array passes over
  ``(J, P)``) and assigns them with the compiled greedy (:mod:`policies.greedy`), which skips
  pools that cannot beat the best cell found, on a fresh capacity timeline, each held job's
  plan (``JobSpec.planned``) read as a (pool, slot) once per row while it is the same object;
- builds the decisions of held jobs directly from the stored rows, all of a round's at once
  (the plan of a job whose cell did not change is the same object as last tick), and those of
  started jobs from the stored rows too, with the reference's fields (each pool's ready
  devices looked up once): :mod:`policies.round_alternatives`, :mod:`policies.round_decisions`.
  A held job whose decision would read as last tick's gets last tick's object back;
  the run-now counterfactual is built only for the decisions built anew.

When the grid crosses slot boundaries the rows shift and only the new last slots are scored
(exact when the scorer's start offsets are whole seconds, else everything is scored again).
When any other dependency changes (a new forecast, a device lost or back, the recalibration
factors in use) every row is scored again: that tick costs what a full re-plan costs. The
answers are those of :func:`policies.planner.plan_window` without a state, field for field (a test
replays ticks with arrivals, ended runs, new forecasts and lost devices to check it): the
stored values are the scorer's own, computed by the same NumPy expressions cell by cell. One
field differs, by design: **a held decision repeated from last tick is last tick's object, its
run-now counterfactual the one stored with it** (built that tick; a full re-plan builds this
tick's, whose slot 0 starts now). The daemon stores a decision only when its action, policy,
reason, devices or start change, so a repeated decision's counterfactual is neither stored
nor read. So the policy keeps state that changes one field of its answer for the same inputs
(``policies.base.Policy`` asks for none): the counterfactual, never the action, plan, reason
or devices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from policies import round_alternatives, round_decisions
from policies.candidates import unfit_reason
from policies.capacity import CapacityTimeline
from policies.errors import PoliciesError
from policies.estimates import EstimateCache, estimate_matrix
from policies.footprint.recalibration import Recalibration
from policies.greedy import GreedyInputs, assign
from policies.greedy_reference import NOTES
from policies.kept_context import KeptContext
from policies.kept_rows import KeptRows
from policies.near_ties import TOLERANCE as _TOLERANCE
from policies.now_cells import regret_rows, score_cells_now
from policies.planner import (
    WindowParameters,
    allowed_pairs,
    planned_cells,
    planning_order,
)
from policies.scoring import (
    CostCube,
    Pool,
    SlotGrid,
    horizon_means,
    make_pools,
    now_means,
    score,
    seconds_to_deadline,
)
from policies.types import Decision, Device, JobSpec, ZoneIntensity

__all__ = ["PlanState"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class _OrderKeys:
    """Per kept row, what the planning order (``planner.planning_order``) reads of its job: the
    deadline in whole microseconds from the epoch, the submission timestamp and the negated
    priority, so that a round computes the seconds to each deadline in one array pass (the
    same value as ``timedelta.total_seconds``: an exact integer divided once)."""

    def __init__(self) -> None:
        self.deadline_us = np.zeros(0, dtype=np.int64)
        self.dated = np.zeros(0, dtype=np.bool_)
        self.submitted = np.zeros(0)
        self.priority = np.zeros(0, dtype=np.int64)

    def store(self, n_rows: int, rows: Sequence[int], jobs: Sequence[JobSpec]) -> None:
        """Keys of ``jobs[k]`` in row ``rows[k]`` (the rows number ``n_rows`` in all)."""
        if len(self.dated) < n_rows:
            grow = n_rows - len(self.dated)
            self.deadline_us = np.concatenate((self.deadline_us, np.zeros(grow, np.int64)))
            self.dated = np.concatenate((self.dated, np.zeros(grow, np.bool_)))
            self.submitted = np.concatenate((self.submitted, np.zeros(grow)))
            self.priority = np.concatenate((self.priority, np.zeros(grow, np.int64)))
        for r, job in zip(rows, jobs, strict=True):
            self.dated[r] = job.deadline is not None
            self.deadline_us[r] = 0 if job.deadline is None else _microseconds(job.deadline)
            self.submitted[r] = job.submitted_at.timestamp()
            self.priority[r] = -job.priority

    def of(
        self, index: IntArray, now: datetime
    ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
        """``planner.planning_order``'s keys of the rows ``index`` at ``now``."""
        left_us = self.deadline_us[index] - _microseconds(now)
        deadline: FloatArray = np.where(self.dated[index], left_us / 1e6, np.inf)
        return deadline, self.submitted[index], self.priority[index]


def _microseconds(at: datetime) -> int:
    """Whole microseconds from the epoch (naive times: from the naive epoch)."""
    epoch = _EPOCH if at.tzinfo is not None else _EPOCH.replace(tzinfo=None)
    return (at - epoch) // _MICROSECOND


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _given_cells(
    rows: KeptRows, at: IntArray, jobs: Sequence[JobSpec], pools: Sequence[Pool],
    grid: SlotGrid,
) -> tuple[IntArray, IntArray]:  # fmt: skip
    """:func:`policies.planner.planned_cells` of ``jobs[k]`` (row ``at[k]``), computed for
    the jobs whose plan is not the object their row last saw (the service hands the same
    :class:`~policies.types.PlannedStart` back while the plan holds; the rows forget them when
    the grid moves on, and every row is new when the pools change)."""
    seen = rows.given
    todo = [k for k, (r, job) in enumerate(zip(at.tolist(), jobs, strict=True))
            if job.planned is not seen[r]]  # fmt: skip
    if todo:
        r_todo = at[todo]
        pool, slot = planned_cells([jobs[k] for k in todo], pools, grid)
        rows.given_cell[r_todo, 0] = pool
        rows.given_cell[r_todo, 1] = slot
        for k, r in zip(todo, r_todo.tolist(), strict=True):
            seen[r] = jobs[k].planned
    cells = rows.given_cell[at]
    return cells[:, 0].copy(), cells[:, 1].copy()  # contiguous, as the compiled greedy reads


class PlanState:
    """Scored rows kept between the ticks of one policy (see the module docstring).

    A cache: the answers are those of a full re-plan on the same inputs (but a repeated held
    decision's run-now counterfactual: see the module docstring). Copies of a policy
    (``with_recalibration``) share it; rows scored under other recalibration factors in use
    are dropped when those differ.
    """

    def __init__(self) -> None:
        self._context = KeptContext()
        self._rows = KeptRows(0, 0)
        self._keys = _OrderKeys()  # beside the rows, by row
        self._savings: dict[float, str] = {}  # round_decisions.saving_text's texts
        self._times_key: tuple[datetime, int, int] | None = None
        self._later: list[datetime] = []  # start times of slots 1.. (see _times)

    def plan(
        self,
        policy: str,
        now: datetime,
        jobs: Sequence[JobSpec],
        devices: Sequence[Device],
        forecasts: Mapping[str, ZoneIntensity],
        params: WindowParameters,
        cache: EstimateCache,
        recalibration: Recalibration | None,
        round_s: float | None = None,
    ) -> list[Decision]:
        """One decision per job, as :func:`policies.planner.plan_window` decides it.

        Raises:
            MissingForecastError: a device's zone has no forecast.
            PoliciesError: two jobs share an id.
        """
        ids = [job.job_id for job in jobs]
        if len(set(ids)) != len(ids):
            raise PoliciesError("two queued jobs share an id: cannot keep their plans apart")
        grid = SlotGrid.aligned(now, params.slot_s, params.horizon_slots)
        pools = make_pools(devices)
        moved = self._context.refresh(pools, grid, forecasts, params, recalibration)
        if moved is None:  # everything they depend on is remembered anew: score every row
            self._rows, moved = KeptRows(len(pools), grid.count), 0
        pue = np.array([p.pue for p in pools])
        index, duration, ok = self._score(
            jobs, pools, forecasts, grid, params, cache, recalibration, moved, pue
        )
        rows = self._rows
        regret = regret_rows(index, rows.energy, rows.ok, rows.allowed, rows.embodied,
                             horizon_means(pools, forecasts, grid), pue)  # fmt: skip
        order = planning_order(jobs, duration, ok, now, params, regret, self._keys.of(index, now))
        longest = np.where(ok, duration, 0.0).max(initial=0.0)
        capacity = CapacityTimeline(pools, grid, int(np.ceil(longest / params.slot_s)) + 1)
        fit: BoolArray = np.any(ok, axis=1)
        fits = [j for j, f in zip(order, fit[order].tolist(), strict=True) if f]
        at = index[fits]
        inputs = GreedyInputs(
            rows.cost, rows.cost_now, rows.intensity, rows.intensity_now, rows.energy, pue,
            rows.embodied, rows.lower, rows.latest, rows.allowed, rows.ok, rows.duration,
            rows.left_s, rows.gpus,
        )  # fmt: skip
        planned = None
        if params.replan_margin > 0:
            planned = _given_cells(rows, at, [jobs[j] for j in fits], pools, grid)
        pool, slot, note = assign(
            at, inputs, capacity, params.herd_penalty, params.min_saving, _TOLERANCE,
            params.duration_margin, planned, params.replan_margin,
        )  # fmt: skip
        decisions: list[Decision | None] = [None] * len(jobs)
        for j in (int(j) for j in np.flatnonzero(~fit)):
            job = jobs[j]
            decisions[j] = Decision(job.job_id, "reject", unfit_reason(job, devices), policy)
        times = self._times(grid)
        ready = round_alternatives.Ready(pools, grid)
        run_now = round_alternatives.RunNow(rows, at, pools, grid, times, now, ready, pue,
                                            forecasts, [jobs[j] for j in fits],
                                            round_s)  # fmt: skip
        plans = round_alternatives.planned(rows, at, pool, slot, pools, times)
        held = slot > 0  # and the jobs planned now that find too few devices free
        n = np.flatnonzero(~held)
        ks = n.tolist()
        for k, decision in zip(ks, round_decisions.started(
            rows, at[n], [jobs[fits[k]] for k in ks], pool[n], [plans[k] for k in ks],
            run_now, n, [NOTES[x] for x in note[n].tolist()], policy,
            params.alternatives, pools, times, ready,
        ), strict=True):  # fmt: skip
            if decision is None:
                held[k] = True
            else:
                decisions[fits[k]] = decision
        h = np.flatnonzero(held)
        ks = h.tolist()
        for k, decision in zip(ks, round_decisions.held(
            rows, at[h], [jobs[fits[k]] for k in ks], [plans[k] for k in ks], pool[h], slot[h],
            rows.latest[at[h], pool[h]], grid, run_now, h, policy, self._savings, pue,
        ), strict=True):  # fmt: skip
            decisions[fits[k]] = decision
        return [d for d in decisions if d is not None]

    def _times(self, grid: SlotGrid) -> list[datetime]:
        """The slots' start times; those of slots 1.. (whole steps after the anchor: slot 0's
        offset into the step is below one step) kept while the anchor is the same."""
        key = (grid.start, grid.step_s, grid.count)
        if key != self._times_key:
            self._times_key = key
            self._later = [grid.time(k) for k in range(1, grid.count)]
        return [grid.time(0), *self._later]

    def _shift(
        self, slots: int, pools: Sequence[Pool], forecasts: Mapping[str, ZoneIntensity],
        grid: SlotGrid, scoring: Mapping[str, float], chunk: int,
    ) -> None:  # fmt: skip
        """Move the rows ``slots`` slots on: cells shift down, the new last slots are scored."""
        rows = self._rows
        n = grid.count - slots
        for first in range(0, len(rows.job), chunk):  # chunks bound the overlap's temporary
            part = slice(first, first + chunk)
            rows.cost[part, :, :n] = rows.cost[part, :, slots:]
            rows.intensity[part, :, :n] = rows.intensity[part, :, slots:]
        live = np.array(sorted(rows.row_of.values()), dtype=np.int64)
        tail = SlotGrid(grid.start + timedelta(seconds=n * grid.step_s), grid.step_s, slots)
        for first in range(0, len(live), chunk):
            at = live[first : first + chunk]
            some = [job for r in at.tolist() if (job := rows.job[r]) is not None]  # all live
            estimates = (rows.duration[at], rows.energy[at], rows.ok[at])
            cube = score(some, pools, forecasts, tail, estimates=estimates, mask_latest=False,
                         **scoring)  # type: ignore[arg-type]  # fmt: skip
            rows.cost[at, :, n:] = np.where(rows.allowed[at][:, :, None], cube.planning_g, np.inf)
            rows.intensity[at, :, n:] = cube.intensity_g_per_kwh
            rows.lower_rest[at] = rows.cost[at, :, 1:].min(axis=2, initial=np.inf)
            rows.left_s[at] = seconds_to_deadline(some, grid.start)
        rows.shift_cells(slots)

    def _score(
        self, jobs: Sequence[JobSpec], pools: Sequence[Pool],
        forecasts: Mapping[str, ZoneIntensity], grid: SlotGrid, params: WindowParameters,
        cache: EstimateCache, recalibration: Recalibration | None, moved: int, pue: FloatArray,
    ) -> tuple[IntArray, FloatArray, BoolArray]:  # fmt: skip
        """Each job's row (kept, or scored now for new or changed jobs), slot 0 scored again
        for all (``pue``: each pool's), and the jobs' durations and admissibility ``(J, P)``;
        first the kept rows follow the grid when it ``moved`` on by that many slots."""
        rows = self._rows
        for job_id in set(rows.row_of) - {job.job_id for job in jobs}:
            rows.release(job_id)
        scoring = {
            "lifetime_years": params.lifetime_years, "duration_margin": params.duration_margin,
            "guard_s": params.guard_s, "risk_aversion": params.risk_aversion,
        }  # fmt: skip
        if moved:
            self._shift(moved, pools, forecasts, grid, scoring, params.chunk_jobs)
        rows.reserve(len(jobs) - len(rows.row_of))
        at: list[int] = []
        new: list[int] = []
        row_of, kept = rows.row_of.get, rows.job
        for j, job in enumerate(jobs):
            r = row_of(job.job_id)
            if r is not None and (kept[r] is job or kept[r] == job):
                kept[r] = job  # an equal spec (a new plan handed back): next tick, the same
                at.append(r)
                continue
            if r is not None:
                rows.release(job.job_id)
            at.append(rows.take(job))
            new.append(j)
        index = np.array(at, dtype=np.int64)
        self._keys.store(len(rows.job), index[new].tolist(), [jobs[j] for j in new])
        for first in range(0, len(new), params.chunk_jobs):
            chunk = new[first : first + params.chunk_jobs]
            some = [jobs[j] for j in chunk]
            estimates = estimate_matrix(some, pools, cache, recalibration)
            allowed = allowed_pairs(some, pools, estimates[2], params.home_only)
            cube = score(some, pools, forecasts, grid, estimates=estimates, mask_latest=False,
                         **scoring)  # type: ignore[arg-type]  # fmt: skip
            self._store(index[chunk], cube, allowed)
        # Slot 0 starts now: score it again (for the new jobs too: one call, the same values),
        # and with it the latest safe starts (they move with now for jobs without a deadline).
        duration, ok = rows.duration[index], rows.ok[index]
        mean, upper = now_means(pools, forecasts, grid, duration, params.risk_aversion)
        score_cells_now(  # left_s: seconds from this grid's anchor (kept so by _shift)
            index, (rows.duration, rows.energy, rows.ok, rows.allowed, rows.embodied, rows.left_s),
            mean, upper, pue, first_offset_s=grid.offsets_s[0],
            duration_margin=params.duration_margin, guard_s=params.guard_s,
            risk_aversion=params.risk_aversion,
            outputs=(rows.cost_now, rows.intensity_now, rows.latest, rows.lower_rest, rows.lower),
        )  # fmt: skip
        return index, duration, ok

    def _store(self, at: IntArray, cube: CostCube, allowed: BoolArray) -> None:
        rows = self._rows
        cost = np.where(allowed[:, :, None], cube.planning_g, np.inf)
        rows.cost[at] = cost
        rows.intensity[at] = cube.intensity_g_per_kwh
        rows.embodied[at] = cube.embodied_g
        rows.duration[at] = cube.duration_s
        rows.energy[at] = cube.energy_j
        rows.ok[at] = cube.admissible
        rows.allowed[at] = allowed
        rows.latest[at] = cube.latest_start_s
        rows.lower_rest[at] = cost[:, :, 1:].min(axis=2, initial=np.inf)
        rows.lower[at] = np.minimum(rows.lower_rest[at], cost[:, :, 0])
        rows.left_s[at] = seconds_to_deadline(cube.jobs, cube.grid.start)
        rows.gpus[at] = [job.workload.tensor_parallel for job in cube.jobs]
