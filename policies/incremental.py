"""The planner's fast path: scored rows kept between ticks, the greedy compiled.

:func:`policies.planner.plan_window` re-plans the whole queue every tick; most of what it
computes does not change from one tick to the next. :class:`PlanState` keeps, per queued job,
what the scorer gave it (estimates, latest safe starts, the planning cost and mean intensity of
every (pool, slot)) for as long as nothing it depends on changes: the pools (GPU types,
regions, PUE, which devices are available), the grid's slots, the forecasts of the pools'
zones, the parameters and the recalibration factors in use. A tick then

- scores only the jobs it has not seen (in chunks of ``chunk_jobs``), and slot 0 for every job
  (slot 0 starts *now*, so it moves every tick);
- orders the jobs as the reference does (priority, urgency, regret: a few array passes over
  ``(J, P)``) and assigns them with the compiled greedy (:mod:`policies.greedy`), which skips
  pools that cannot beat the best cell found, on a fresh capacity timeline;
- builds the decisions of held jobs directly from the stored rows (the plan of a job whose
  cell did not change is the same object as last tick), and those of started jobs from the
  stored rows too, with the reference's fields (each pool's ready devices looked up once).

When the grid crosses slot boundaries the rows shift and only the new last slots are scored
(exact when the scorer's start offsets are whole seconds, else everything is scored again).
When any other dependency changes (a new forecast, a device lost or back, the recalibration
factors in use) every row is scored again: that tick costs what a full re-plan costs. The
answers are those of :func:`policies.planner.plan_window` without a state, field for field (a test
replays ticks with arrivals, ended runs, new forecasts and lost devices to check it): the
stored values are the scorer's own, computed by the same NumPy expressions cell by cell.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from policies.candidates import unfit_reason
from policies.capacity import CapacityTimeline
from policies.decisions import free_devices, ready_devices
from policies.errors import PoliciesError
from policies.footprint.gpus import GpuSpec
from policies.footprint.recalibration import Recalibration
from policies.greedy import NOTE_HOME, NOTE_LATE, NOTE_NONE, GreedyInputs, assign
from policies.kept_rows import KeptRows, alternative, alternatives
from policies.planner import (
    _TOLERANCE,
    HOME_NOTE,
    LATE_NOTE,
    WindowParameters,
    _allowed,
    _order,
    _regret,
)  # fmt: skip
from policies.scoring import (
    CostCube,
    EstimateCache,
    Pool,
    SlotGrid,
    estimate_matrix,
    make_pools,
    score,
    score_now,
    typical_g,
    upper_values,
)  # fmt: skip
from policies.types import Alternative, Decision, Device, JobSpec, ZoneIntensity

__all__ = ["PlanState"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


_Factors = tuple[tuple[tuple[str, str], float, float], ...]


@dataclass(frozen=True, slots=True)
class _Context:
    """What every stored row depends on besides its own job."""

    pools: tuple[tuple[str, str, GpuSpec, float, tuple[tuple[str, bool], ...]], ...]
    grid: tuple[int, int]  # slot length and count (the anchor moves: see PlanState._shift)
    params: WindowParameters
    factors: _Factors  # the recalibration factors in use


def _in_use(
    recalibration: Recalibration | None,
) -> tuple[tuple[tuple[str, str], float, float], ...]:
    """The factors that change estimates (``Recalibration.apply`` uses only these): a new
    observation of a pair whose factors are not yet in use changes no row."""
    if recalibration is None:
        return ()
    return tuple(sorted(
        (key, recalibration.energy_factor(*key), recalibration.duration_factor(*key))
        for key in recalibration.factors
        if recalibration.in_use(*key)
    ))  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Seen:
    """A copy of what the rows read from one zone's forecast."""

    start: datetime
    step_s: int
    values: FloatArray
    upper: FloatArray | None

    @classmethod
    def of(cls, forecast: ZoneIntensity) -> _Seen:
        upper = upper_values(forecast)
        values = np.array(forecast.values_g_per_kwh, dtype=np.float64)
        return cls(forecast.start, forecast.step_s, values, None if upper is None else upper.copy())

    def same(self, forecast: ZoneIntensity) -> bool:
        upper = upper_values(forecast)
        return (
            self.start == forecast.start
            and self.step_s == forecast.step_s
            and np.array_equal(self.values, forecast.values_g_per_kwh)
            and (upper is None) == (self.upper is None)
            and (upper is None or (self.upper is not None and np.array_equal(self.upper, upper)))
        )


_NOTES = {NOTE_NONE: "", NOTE_HOME: HOME_NOTE, NOTE_LATE: LATE_NOTE}


def _saving(plan: Alternative, run_now: Alternative | None) -> str:
    """The reasons' " (N% below run-now)", as ``planner._decide`` words it."""
    if run_now is not None and run_now.total_g > 0:
        return f" ({1 - plan.total_g / run_now.total_g:.0%} below run-now)"
    return ""


class _Ready:
    """:func:`policies.decisions.ready_devices` of a tick's pools, each answer computed once
    (the devices' busy times do not change within a tick)."""

    def __init__(self, pools: Sequence[Pool]) -> None:
        self._pools = pools
        self._seen: dict[tuple[int, datetime, int], tuple[datetime, list[Device]] | None] = {}

    def __call__(self, p: int, at: datetime, need: int) -> tuple[datetime, list[Device]] | None:
        key = (p, at, need)
        if key not in self._seen:
            self._seen[key] = ready_devices(self._pools[p], at, need)
        return self._seen[key]


class PlanState:
    """Scored rows kept between the ticks of one policy (see the module docstring).

    A cache: the answers are those of a full re-plan on the same inputs. Copies of a policy
    (``with_recalibration``) share it; rows scored under other recalibration factors in use
    are dropped when those differ.
    """

    def __init__(self) -> None:
        self._context: _Context | None = None
        self._start = datetime.min.replace(tzinfo=UTC)  # the grid's anchor at the last tick
        self._forecasts: dict[str, _Seen] = {}
        self._rows = KeptRows(0, 0)

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
        moved = self._refresh(pools, grid, forecasts, params, recalibration)
        index, (duration, energy, ok) = self._score(
            jobs, pools, forecasts, grid, params, cache, recalibration, moved
        )
        rows = self._rows
        typical = typical_g(jobs, pools, forecasts, grid, (duration, energy, ok),
                            params.lifetime_years)  # fmt: skip
        regret = _regret(np.where(rows.allowed[index], typical, np.inf))
        order = _order(jobs, duration, ok, now, params, regret)
        longest = np.where(ok, duration, 0.0).max(initial=0.0)
        capacity = CapacityTimeline(pools, grid, int(np.ceil(longest / params.slot_s)) + 1)
        fit: BoolArray = np.any(ok, axis=1)
        fits = [j for j, f in zip(order, fit[order].tolist(), strict=True) if f]
        at = index[fits]
        inputs = GreedyInputs(
            rows.cost, rows.cost_now, rows.intensity, rows.intensity_now, rows.energy,
            np.array([p.pue for p in pools]),
            rows.embodied, rows.lower, rows.latest, rows.allowed, rows.ok, rows.duration,
            rows.left_s, rows.gpus,
        )  # fmt: skip
        pool, slot, note = assign(
            at, inputs, capacity, params.herd_penalty, params.min_saving, _TOLERANCE,
            params.duration_margin,
        )  # fmt: skip
        decisions: list[Decision | None] = [None] * len(jobs)
        for j in (int(j) for j in np.flatnonzero(~fit)):
            job = jobs[j]
            decisions[j] = Decision(job.job_id, "reject", unfit_reason(job, devices), policy)
        times = [grid.time(k) for k in range(grid.count)]
        ready = _Ready(pools)
        run_now = self._run_now(at, pools, grid, times, now, ready)
        plans = self._plans(at, pool, slot, pools, times)
        latest = rows.latest[at, pool].tolist()
        # Devices free now per pool, less those this tick starts jobs on (free_devices' count).
        free_now = [len(free_devices(p, now, set())) for p in pools]
        taken: set[str] = set()
        cells = zip(fits, at.tolist(), pool.tolist(), slot.tolist(), note.tolist(), strict=True)
        for k, (j, r, p, s, why) in enumerate(cells):
            if s == 0 and free_now[p] >= rows.gpus[r]:
                decisions[j] = decision = self._start_now(
                    r, jobs[j], p, plans[k], run_now[k], _NOTES[why], policy, params.alternatives,
                    pools, grid, times, taken, ready,
                )  # fmt: skip
                if decision.action == "start" and decision.chosen is not None:
                    free_now[p] -= len(decision.chosen.device_ids)
            else:
                decisions[j] = self._held(r, jobs[j], plans[k], s, latest[k], grid, run_now[k],
                                          policy)  # fmt: skip
        return [d for d in decisions if d is not None]

    def _refresh(
        self, pools: Sequence[Pool], grid: SlotGrid, forecasts: Mapping[str, ZoneIntensity],
        params: WindowParameters, recalibration: Recalibration | None,
    ) -> int:  # fmt: skip
        """Drop every row when anything they depend on changed; else the number of slots the
        grid moved on since the last tick (0: none), when the rows can follow it."""
        context = _Context(
            tuple((p.region, p.zone, p.gpu, p.pue,
                   tuple((d.device_id, d.available) for d in p.devices)) for p in pools),
            (grid.step_s, grid.count), params, _in_use(recalibration),
        )  # fmt: skip
        zones = {p.zone: forecasts.get(p.zone) for p in pools}
        same = context == self._context and all(
            f is not None and z in self._forecasts and self._forecasts[z].same(f)
            for z, f in zones.items()
        )
        moved_s = (grid.start - self._start).total_seconds() if same else -1.0
        if moved_s == 0:
            return 0
        slots = int(moved_s // grid.step_s)
        # Stored cells are kept by slot index; shifted, they equal freshly scored ones when
        # every start offset the scorer computes is a whole number of seconds (exact in floats).
        whole = all(
            f is not None and (f.start - grid.start).total_seconds().is_integer()
            for f in zones.values()
        )
        self._start = grid.start
        if same and whole and 0 < slots < grid.count and slots * grid.step_s == moved_s:
            return slots
        self._context = context
        self._forecasts = {z: _Seen.of(f) for z, f in zones.items() if f is not None}
        self._rows = KeptRows(len(pools), grid.count)
        return 0

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
            rows.left_s[at] = [
                math.inf if job.deadline is None else (job.deadline - grid.start).total_seconds()
                for job in some
            ]
        rows.forget_cells()

    def _score(
        self, jobs: Sequence[JobSpec], pools: Sequence[Pool],
        forecasts: Mapping[str, ZoneIntensity], grid: SlotGrid, params: WindowParameters,
        cache: EstimateCache, recalibration: Recalibration | None, moved: int,
    ) -> tuple[IntArray, tuple[FloatArray, FloatArray, BoolArray]]:  # fmt: skip
        """Each job's row (kept, or scored now for new or changed jobs), slot 0 scored again
        for all, and the jobs' estimates ``(J, P)``; first the kept rows follow the grid when
        it ``moved`` on by that many slots."""
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
        index = np.empty(len(jobs), dtype=np.int64)
        new: list[int] = []
        for j, job in enumerate(jobs):
            r = rows.row_of.get(job.job_id)
            if r is not None and (rows.job[r] is job or rows.job[r] == job):
                index[j] = r
                continue
            if r is not None:
                rows.release(job.job_id)
            index[j] = rows.take(job)
            new.append(j)
        for first in range(0, len(new), params.chunk_jobs):
            chunk = new[first : first + params.chunk_jobs]
            some = [jobs[j] for j in chunk]
            estimates = estimate_matrix(some, pools, cache, recalibration)
            allowed = _allowed(some, pools, estimates[2], params.home_only)
            cube = score(some, pools, forecasts, grid, estimates=estimates, mask_latest=False,
                         **scoring)  # type: ignore[arg-type]  # fmt: skip
            self._store(index[chunk], cube, allowed)
        # Slot 0 starts now: score it again (for the new jobs too: one call, the same values).
        estimates = (rows.duration[index], rows.energy[index], rows.ok[index])
        planning, intensity, latest = score_now(jobs, pools, forecasts, grid, estimates,
                                                **scoring)  # fmt: skip
        cost = np.where(rows.allowed[index], planning, np.inf)
        rows.cost_now[index] = cost
        rows.intensity_now[index] = intensity
        rows.latest[index] = latest  # moves with now for jobs without a deadline
        rows.lower[index] = np.minimum(rows.lower_rest[index], cost)
        return index, estimates

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
        start = cube.grid.start
        rows.left_s[at] = [
            math.inf if job.deadline is None else (job.deadline - start).total_seconds()
            for job in cube.jobs
        ]
        rows.gpus[at] = [job.workload.tensor_parallel for job in cube.jobs]

    def _run_now(
        self, at: IntArray, pools: Sequence[Pool], grid: SlotGrid, times: Sequence[datetime],
        now: datetime, ready_of: _Ready,
    ) -> list[Alternative | None]:  # fmt: skip
        """:func:`policies.decisions.run_now_alternative` for the rows ``at``: the fastest
        admissible pool among those whose devices are free first (ties: the first pool)."""
        rows = self._rows
        out: list[Alternative | None] = [None] * len(at)
        need = rows.gpus[at]
        for g in np.unique(need):
            sel = np.flatnonzero(need == g)
            ready = [ready_of(p, now, int(g)) for p in range(len(pools))]
            ready_s = np.array(
                [math.inf if x is None else (x[0] - grid.start).total_seconds() for x in ready]
            )
            later = [np.flatnonzero(grid.offsets_s >= t - 1e-6) for t in ready_s]
            slot_of = np.array([x[0] if x.size else grid.count - 1 for x in later], dtype=np.int64)
            ids = [None if x is None else tuple(d.device_id for d in x[1]) for x in ready]
            admissible = rows.ok[at[sel]]
            first = np.where(admissible, ready_s[None, :], np.inf)
            cand = admissible & (first == first.min(axis=1, initial=np.inf)[:, None])
            by = np.where(cand, rows.duration[at[sel]], np.inf)
            cand &= by == by.min(axis=1, initial=np.inf)[:, None]
            cand &= np.isfinite(first)
            has = np.flatnonzero(cand.any(axis=1))
            p = cand.argmax(axis=1)[has]
            where = sel[has].tolist()
            held = at[sel[has]]
            cell = rows.run_now_cell[held]
            same = (slot_of[p] > 0) & (cell[:, 0] == p) & (cell[:, 1] == slot_of[p])
            todo = []
            cells = zip(held.tolist(), p.tolist(), same.tolist(), strict=True)
            for i, (r, q, kept) in enumerate(cells):
                seen = rows.run_now[r] if kept else None
                if seen is not None and seen.device_ids == ids[q]:
                    out[where[i]] = seen
                else:
                    todo.append(i)
            i_todo = np.array(todo, dtype=np.int64)
            r_todo, p_todo = at[sel[has]][i_todo], p[i_todo]
            built = alternatives(rows, r_todo, p_todo, slot_of[p_todo], pools, times,
                                  [ids[q] for q in p_todo.tolist()])  # fmt: skip
            for i, r, q, alt in zip(todo, r_todo.tolist(), p_todo.tolist(), built, strict=True):
                out[where[i]] = alt
                rows.run_now[r] = alt
                rows.run_now_cell[r] = q, slot_of[q]
        return out

    def _plans(
        self, at: IntArray, pool: IntArray, slot: IntArray, pools: Sequence[Pool],
        times: Sequence[datetime],
    ) -> list[Alternative]:  # fmt: skip
        """Each job's planned cell as an alternative: last tick's object when the cell is the
        same and later than slot 0 (whose values move with now)."""
        rows = self._rows
        cells = rows.plan_cell[at]
        same = (slot > 0) & (cells[:, 0] == pool) & (cells[:, 1] == slot)
        kept = rows.plan
        plans = [kept[r] if ok else None for r, ok in zip(at.tolist(), same.tolist(), strict=True)]
        todo = np.array([k for k, x in enumerate(plans) if x is None], dtype=np.int64)
        built = alternatives(rows, at[todo], pool[todo], slot[todo], pools, times,
                              [None] * len(todo))  # fmt: skip
        for k, r, alt in zip(todo.tolist(), at[todo].tolist(), built, strict=True):
            plans[k] = kept[r] = alt
        rows.plan_cell[at[todo], 0] = pool[todo]
        rows.plan_cell[at[todo], 1] = slot[todo]
        return [x for x in plans if x is not None]

    def _start_now(
        self, r: int, job: JobSpec, p: int, plan: Alternative, run_now: Alternative | None,
        note: str, policy: str, limit: int, pools: Sequence[Pool], grid: SlotGrid,
        times: Sequence[datetime], taken: set[str], ready: _Ready,
    ) -> Decision:  # fmt: skip
        """``planner._decide`` for row ``r`` planned now on pool ``p`` (``plan``: that cell
        with the pool's first devices), from the stored row: the same fields, without a cube."""
        rows = self._rows
        now = times[0]
        saving = _saving(plan, run_now)
        need = int(rows.gpus[r])
        free = free_devices(pools[p], now, taken)
        if len(free) < need:  # only when every admissible pool is over-committed
            reason = f"hold: planned now on {plan.gpu} in {plan.region}, waiting for a free GPU"
            return Decision(job.job_id, "hold", reason, policy, plan, run_now)
        chosen = tuple(d.device_id for d in free[:need])
        taken.update(chosen)
        alt = alternative(rows, r, p, 0, pools, times, chosen)
        others = self._others(r, p, need, limit, pools, grid, times, ready)
        why = note or "cheapest feasible (device, region, start) over the horizon"
        reason = f"start now on {alt.gpu} in {alt.region}: {alt.total_g:.3g} g{saving}; {why}"
        return Decision(job.job_id, "start", reason, policy, alt, run_now, others)

    def _others(
        self, r: int, exclude: int, need: int, limit: int, pools: Sequence[Pool],
        grid: SlotGrid, times: Sequence[datetime], ready: _Ready,
    ) -> tuple[Alternative, ...]:  # fmt: skip
        """:func:`policies.decisions.best_alternatives` for row ``r`` (its cost, slot 0 now,
        ``inf`` after each pool's latest safe start)."""
        if limit <= 0:
            return ()
        rows = self._rows
        offsets = grid.offsets_s
        masked = np.where(offsets[None, :] > rows.latest[r][:, None], np.inf, rows.cost[r])
        masked[:, 0] = rows.cost_now[r]
        ready_at: dict[int, datetime] = {}
        for q in range(len(pools)):
            first = ready(q, times[0], need)
            if first is None:
                masked[q] = np.inf
                continue
            ready_at[q] = first[0]
            masked[q, offsets < (first[0] - grid.start).total_seconds() - 1e-6] = np.inf
        best_slot = np.argmin(masked, axis=1)
        best_cost = masked[np.arange(masked.shape[0]), best_slot]
        order = [
            int(q) for q in np.argsort(best_cost) if q != exclude and np.isfinite(best_cost[q])
        ]
        cells = [(q, int(best_slot[q])) for q in order[:limit]]
        out = []
        for q, s in cells:
            then = ready(q, max(times[s], ready_at[q]), need)
            assert then is not None
            ids = tuple(d.device_id for d in then[1])
            out.append(alternative(rows, r, q, s, pools, times, ids))
        return tuple(out)

    def _hold(
        self, job: JobSpec, plan: Alternative, s: int, latest: float, grid: SlotGrid,
        run_now: Alternative | None, policy: str, saving: str,
    ) -> Decision:  # fmt: skip
        """``planner._decide`` for a job held: planned later, or now with too few GPUs free;
        ``saving`` is :func:`_saving` of ``plan`` and ``run_now``."""
        if s == 0:
            reason = f"hold: planned now on {plan.gpu} in {plan.region}, waiting for a free GPU"
            return Decision(job.job_id, "hold", reason, policy, plan, run_now)
        texts = self._rows.latest_txt
        latest_txt = texts.get(latest)
        if latest_txt is None:
            latest_txt = "none"
            if np.isfinite(latest):
                at = grid.start + timedelta(seconds=latest)
                latest_txt = at.isoformat(timespec="minutes")
            texts[latest] = latest_txt
        start = self._rows.start_txt.get(s)
        if start is None:
            start = self._rows.start_txt[s] = plan.start.isoformat(timespec="minutes")
        reason = (
            f"hold: plan {plan.gpu} in {plan.region} at {start}"
            f" for {plan.total_g:.3g} g{saving}; latest safe start {latest_txt}"
        )
        return Decision(job.job_id, "hold", reason, policy, plan, run_now)

    def _held(
        self, r: int, job: JobSpec, plan: Alternative, s: int, latest: float, grid: SlotGrid,
        run_now: Alternative | None, policy: str,
    ) -> Decision:  # fmt: skip
        """:meth:`_hold`, or last tick's decision for row ``r`` when it would be the same
        (its plan object, latest safe start and policy the same): the very object when
        run-now is too, else its reason when the run-now figure it quotes reads the same."""
        rows = self._rows
        seen = rows.held[r]
        same = (
            s > 0 and seen is not None and seen.chosen is plan
            and rows.held_latest[r] == latest and seen.policy == policy
        )  # fmt: skip
        if same and seen is not None and seen.run_now is run_now:
            return seen
        saving = _saving(plan, run_now)
        if same and seen is not None and saving == rows.held_saving[r]:
            decision = Decision(job.job_id, "hold", seen.reason, policy, plan, run_now)
        else:
            decision = self._hold(job, plan, s, latest, grid, run_now, policy, saving)
        rows.held[r] = decision if s > 0 else None
        rows.held_saving[r] = saving
        rows.held_latest[r] = latest
        return decision
