"""One job's cell in the window planner's greedy, in NumPy: :func:`choose` takes the cheapest
free (pool, slot) for it (near-ties to the earlier start, its kept plan within
``replan_margin``, now unless waiting saves ``min_saving``; with the look-ahead LP's weights,
of the heaviest free cells the cheapest) and reserves its devices; :func:`rescue` places a job
with no free cell before its latest safe starts.

This is the reference the compiled greedy (:func:`policies.greedy.assign`,
:func:`~policies.greedy.assign_weighted`, :mod:`policies.greedy_kernels`) mirrors, branch for
branch; ``tests/policies/test_lookahead_compiled.py`` holds them equal. The full re-plan
(:func:`policies.planner.plan_window` without a state) calls :func:`choose` job after job; the
fast path (:mod:`policies.incremental`) and the look-ahead's rounding call the compiled one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from policies.capacity import CapacityTimeline
from policies.greedy import NOTE_HOME, NOTE_LATE, NOTE_NONE
from policies.near_ties import TOLERANCE as _TOLERANCE
from policies.near_ties import WEIGHT_TOLERANCE, earliest_near
from policies.run_now_claims import RunNowCell
from policies.scoring import CostCube
from policies.types import ZoneIntensity

if TYPE_CHECKING:
    from policies.planner import WindowParameters

__all__ = ["HOME_NOTE", "LATE_NOTE", "NOTES", "Tick", "choose", "rescue"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
HOME_NOTE = "its home region cannot run it: the earliest devices that end in time"
LATE_NOTE = "past its latest safe start: the earliest devices that end in time"
NOTES = {NOTE_NONE: "", NOTE_HOME: HOME_NOTE, NOTE_LATE: LATE_NOTE}  # the compiled greedy's


@dataclass(slots=True)
class Tick:
    """Working state of one planning call."""

    cube: CostCube
    cost: FloatArray
    capacity: CapacityTimeline
    allowed: npt.NDArray[np.bool_]
    now: datetime
    taken: set[str]
    planned: tuple[IntArray, IntArray]  # each job's plan as (pool, slot): planned_cells
    forecasts: Mapping[str, ZoneIntensity]
    run_now: dict[int, RunNowCell]  # each job's run-now cell (none: it fits no pool)


def choose(
    tick: Tick, j: int, params: WindowParameters, weights: FloatArray | None = None
) -> tuple[int, int, str]:
    """The (pool, slot) for job ``j`` and a phrase saying why; reserves its devices.

    With ``weights`` (the look-ahead LP's, ``(P, S)``): of the free cells of largest weight
    (within ``WEIGHT_TOLERANCE``), the cheapest (of those within ``_TOLERANCE`` of it, the
    earliest start, then the first pool); else, or with no weight on a free cell, the cheapest
    free cell (of those within ``_TOLERANCE`` of it, the earliest start:
    :func:`policies.near_ties.earliest_near`), or the job's plan if it is free and costs at
    most ``replan_margin`` more.

    The full re-plan calls it without weights; with them it is only the reference of the
    look-ahead's compiled rounding (:func:`policies.greedy.assign_weighted`, which
    ``tests/policies/test_lookahead_compiled.py`` holds equal to it), as it is of the greedy.
    """
    cube, cap = tick.cube, tick.capacity
    tp = cube.jobs[j].workload.tensor_parallel
    duration = cube.duration_s[j]
    free = cap.feasible(duration, tp)
    row = tick.cost[j]
    if params.herd_penalty > 0:
        row = row * (1.0 + params.herd_penalty * cap.used_fraction())
    row = np.where(free, row, np.inf)
    if not np.isfinite(row).any():
        p, s = rescue(tick, j, free, params.duration_margin)
        cap.reserve(p, s, float(duration[p]), tp)
        return p, s, LATE_NOTE if tick.allowed[j].any() else HOME_NOTE
    p, s = earliest_near(row, _TOLERANCE)  # a near-tie goes to the earlier start
    kept_p, kept_s = int(tick.planned[0][j]), int(tick.planned[1][j])
    if (
        weights is None
        and params.replan_margin > 0
        and kept_s > 0
        and (kept_p, kept_s) != (p, s)
        and row[kept_p, kept_s] <= row[p, s] * (1.0 + params.replan_margin)
    ):
        p, s = kept_p, kept_s
    if weights is not None:
        usable = np.where(np.isfinite(row), weights, 0.0)
        heaviest = float(usable.max(initial=0.0))
        if heaviest > 1e-6:  # of the heaviest free cells, the cheapest (near-ties: earliest)
            heavy = np.isfinite(row) & (weights >= heaviest - WEIGHT_TOLERANCE)
            p, s = earliest_near(np.where(heavy, row, np.inf), _TOLERANCE)
    best_now = float(row[:, 0].min())
    if (
        s > 0
        and np.isfinite(best_now)
        and row[p, s] >= best_now * (1.0 - params.min_saving - _TOLERANCE)
    ):
        p, s = int(np.argmin(row[:, 0])), 0
    cap.reserve(p, s, float(duration[p]), tp)
    return p, s, ""


def rescue(tick: Tick, j: int, free: npt.NDArray[np.bool_], margin: float) -> tuple[int, int]:
    """A (pool, slot) for a job with no slot left before its latest safe starts.

    Among the starts that the devices allow, first in the allowed pools, then (a job about to
    miss its deadline goes wherever it can, even under ``home_only``) in any admissible pool:
    the earliest start that still ends by the deadline with the duration margin, in the
    cheapest pool that has it (now where a device is free: a job past its latest safe start
    does not wait for a cheaper slot; with none free, the first that frees, where the job,
    planned again every round, will start, not a cheaper later one), else the one that ends
    soonest among those that end in time (for a job without a deadline: the one that ends
    soonest). Else the start that ends soonest anywhere; with no free start in the whole
    horizon, the fastest admissible pool now (the job waits there for a GPU).
    """
    cube = tick.cube
    duration = np.where(np.isfinite(cube.duration_s[j]), cube.duration_s[j], np.inf)
    deadline = cube.jobs[j].deadline
    left_s = math.inf if deadline is None else (deadline - cube.grid.start).total_seconds()
    end = tick.capacity.offsets_s[None, : cube.grid.count] + duration[:, None]
    # a pool the job does not fit ends at inf, margin or not (inf x 0 would be NaN, and warn)
    fits = np.isfinite(duration)
    allowance = np.full_like(duration, np.inf)
    allowance[fits] = duration[fits] * margin
    late = end + allowance[:, None]
    grams = cube.operational_g[j] + cube.embodied_g[j][:, None]  # total_g is inf past latest

    def best(cells: npt.NDArray[np.bool_], by: FloatArray) -> tuple[int, int]:
        p, s = np.unravel_index(int(np.argmin(np.where(cells, by, np.inf))), cells.shape)
        return int(p), int(s)

    for pools in (tick.allowed[j], cube.admissible[j]):
        cells = free & pools[:, None] & np.isfinite(end)
        if deadline is None and cells.any():
            return best(cells, end)
        safe = cells & (late <= left_s)
        if safe.any():  # a late job does not wait: its first start in time, now if it can
            first = int(np.argmax(safe.any(axis=0)))
            return best(safe & (np.arange(safe.shape[1]) == first), grams)
        if (cells & (end <= left_s)).any():
            return best(cells & (end <= left_s), end)
    cells = free & cube.admissible[j][:, None] & np.isfinite(end)
    if cells.any():
        return best(cells, end)
    return int(np.argmin(np.where(cube.admissible[j], duration, np.inf))), 0
