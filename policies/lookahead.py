"""Look-ahead over capacity: the waiting jobs' (pool, start slot) assigned jointly by an LP.

The greedy planner gives each job in turn its cheapest free cell, so a job planned late finds
the clean pools taken by the *tentative* plans of jobs held for later, and starts at once in a
dirty region although the held jobs could have moved (the 12 h weakness in docs/policies.md).
Here one LP over every waiting job, solved with HiGHS each planning round (through its dual,
which HiGHS solves several times faster on these degenerate LPs: :func:`_solved_through_dual`),
decides who gets the clean device-slots:

- a variable ``x[j, p, s]`` per allowed cell (before the job's latest safe start on ``p``,
  where the capacity timeline has the job's devices free for its whole run from ``s``), at the
  cell's planning cost (forecast, hedged by ``risk_aversion``);
- ``sum_{p, s} x[j, p, s] + u[j] = 1`` with ``u[j]`` (the job left to the greedy's rescue path)
  at a prohibitive cost, so the LP is always feasible;
- per pool and start instant, the devices the cells covering that instant take are at most the
  devices not running other jobs (the same discrete model as :mod:`policies.capacity`).

Rounding (alpha-point order, as for time-indexed scheduling LPs): the planner takes the jobs
by their mean start slot under the LP's weights, earliest first (jobs the LP leaves out last,
in the usual order), and gives each the free cell of largest weight (ties: the cheapest, then
the earliest start, as near-ties of cost go), else its cheapest free cell; the usual rules
hold (``min_saving`` against the free start-now cells, deadline safety, the rescue path).

Priorities are planned in turn, as the greedy plans them: the plans below are made per
priority level, highest first, each on the capacity the levels above took, so a job's joint
plan never gives way to a job of lower priority.

**Never less safe nor worse than the greedy, as planned** (:func:`plan_round`): each round
builds the greedy's plan (the usual order, no weights), the same improved by moving single
jobs to cheaper free cells, and the LP-rounded plan improved the same way (a cell left free
after rounding is pure gain), and keeps the one with the fewest runs planned to end past
their deadline with the duration margin (only the rescue path's cells can), then the least
planned grams; ties go to the greedy. All obey the same rules, so the look-ahead departs from
``carbon-window`` only where its plan for the queue is cheaper and as safe. No LP is solved
when no job can wait (all due within ``urgent_s``) or the greedy already gives every job its
cheapest cell.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from policies.capacity import CapacityTimeline, covered_instants
from policies.errors import PoliciesError
from policies.local_search import improve
from policies.near_ties import TOLERANCE as _TOLERANCE

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

__all__ = ["RoundPlan", "Rounding", "plan_round", "preferred_cells"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def preferred_cells(
    cost: FloatArray, duration_s: FloatArray, gpus: IntArray, capacity: CapacityTimeline,
    max_cells: int = 200_000,
) -> FloatArray | None:  # fmt: skip
    """The LP's weight of every (job, pool, slot), shape ``(J, P, S)`` (a job's weights add up
    to 1, or less where the LP leaves it out); None when the LP has more than ``max_cells``
    variables (plan greedily) or HiGHS fails.

    ``cost`` is ``(J, P, S)`` (``inf`` where not allowed), ``duration_s`` ``(J, P)``, ``gpus``
    ``(J,)`` the devices each job needs; ``capacity`` holds the devices already in use.
    """
    from scipy.sparse import coo_matrix

    n_jobs = cost.shape[0]
    free = np.stack(
        [capacity.feasible(duration_s[j], int(gpus[j])) for j in range(n_jobs)]
    )  # (J, P, S): the devices are free for the whole run
    cells = np.isfinite(cost) & free
    if int(cells.sum()) > max_cells:
        return None
    if not cells.any():
        return np.zeros(cost.shape)
    job, pool, slot = (a.astype(np.int64) for a in np.nonzero(cells))
    n = len(job)
    first, end = covered_instants(capacity, slot, duration_s[job, pool])
    counts = end - first
    col = np.repeat(np.arange(n), counts)
    instant = np.repeat(first, counts) + (
        np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    )
    n_instants = len(capacity.offsets_s)
    row_key = pool[col] * n_instants + instant
    keys, row = np.unique(row_key, return_inverse=True)
    room = capacity.size[keys // n_instants] - capacity.busy[keys // n_instants, keys % n_instants]
    a_ub = coo_matrix(
        (gpus[job][col].astype(np.float64), (row, col)), shape=(len(keys), n + n_jobs)
    ).tocsr()
    a_eq = coo_matrix(
        (np.ones(n + n_jobs), (np.concatenate((job, np.arange(n_jobs))),
                               np.arange(n + n_jobs))),
        shape=(n_jobs, n + n_jobs),
    ).tocsr()  # fmt: skip
    values = cost[job, pool, slot] * (1.0 + 1e-6 * slot)  # ties: the earlier start
    left_out = 10.0 * (float(values.max()) + 1.0)  # any cell beats leaving a job out
    x = _solved_through_dual(
        np.concatenate((values, np.full(n_jobs, left_out))), a_ub,
        np.maximum(room, 0).astype(np.float64), a_eq, np.ones(n_jobs),
    )  # fmt: skip
    if x is None:
        return None
    weights = np.zeros(cost.shape)
    weights[job, pool, slot] = x[:n]
    return weights


def _solved_through_dual(
    c: FloatArray, a_ub: csr_matrix, b_ub: FloatArray, a_eq: csr_matrix, b_eq: FloatArray
) -> FloatArray | None:
    """``x`` minimising ``c @ x`` with ``a_ub @ x <= b_ub``, ``a_eq @ x == b_eq``, ``x >= 0``,
    read off its dual's solution (None where HiGHS fails).

    The dual, ``max b_eq @ u - b_ub @ lam`` with ``a_eq.T @ u - a_ub.T @ lam <= c``, ``lam >= 0``,
    is solved by HiGHS's dual simplex, and ``x`` is minus the marginals of its rows. The
    look-ahead's LPs have few rows (the pools' instants and the jobs) over many columns and
    are highly degenerate: solved as they stand they took ~3x as long (2.94 s against 0.94 s
    for 15 rounds of a June day at 12 h slack, the optima equal within 1e-9; docs/policies.md,
    "Look-ahead over capacity"). Where the optimum is not unique the two can return different
    optimal weights, so the rounding may differ.
    """
    from scipy.optimize import linprog
    from scipy.sparse import hstack

    n_ub, n_eq = a_ub.shape[0], a_eq.shape[0]
    try:
        solved = linprog(
            np.concatenate((b_ub, -b_eq)), A_ub=hstack((-a_ub.T, a_eq.T)).tocsr(), b_ub=c,
            bounds=[(0, None)] * n_ub + [(None, None)] * n_eq, method="highs-ds",
        )  # fmt: skip
    except (ValueError, PoliciesError):
        return None
    if solved.status != 0:
        return None
    return np.maximum(-np.asarray(solved.ineqlin.marginals, dtype=np.float64), 0.0)


Rounding = Callable[
    [CapacityTimeline, Sequence[int], FloatArray | None], list[tuple[int, int, int, str]]
]
"""``rounding(capacity, order, weights) -> cells``: the planner's rule for each job of
``order`` in turn, ``(job, pool, slot, note)``, reserving their devices on ``capacity``; with
the LP's ``weights`` (``(J, P, S)``) each takes its free cell of largest weight."""


@dataclass(frozen=True, slots=True)
class RoundPlan:
    """One round's plan: ``cells`` is ``(job, pool, slot, note)`` in planning order."""

    cells: tuple[tuple[int, int, int, str], ...]
    planned_g: float  # the plan's planning cost (grams where a job took the rescue path)
    source: str  # "greedy" or "lp"
    moves: int  # single-job moves the local search made
    unsafe: int = 0  # runs planned to end past their deadline with the duration margin


def _planned_g(
    cost: FloatArray, grams: FloatArray, cells: Sequence[tuple[int, int, int, str]]
) -> float:
    total = 0.0
    for k, p, s, _ in cells:
        c = float(cost[k, p, s])
        total += c if np.isfinite(c) else float(grams[k, p, s])
    return total


def _unsafe(
    capacity: CapacityTimeline, duration_s: FloatArray, deadline_s: FloatArray, margin: float,
    cells: Sequence[tuple[int, int, int, str]],
) -> int:  # fmt: skip
    """How many of ``cells`` end past their job's deadline (``deadline_s``: seconds from the
    grid's start; not finite: none) with the duration margin, as the rescue path counts it."""
    if not cells:
        return 0
    k, p, s = (np.array([c[i] for c in cells], dtype=np.int64) for i in range(3))
    duration = np.where(np.isfinite(duration_s[k, p]), duration_s[k, p], np.inf)  # NaN: no fit
    return int((capacity.offsets_s[s] + duration * (1.0 + margin) > deadline_s[k]).sum())


def _lp_rounded(
    cost: FloatArray,
    duration_s: FloatArray,
    gpus: IntArray,
    capacity: CapacityTimeline,
    order: Sequence[int],
    rounding: Rounding,
    members: IntArray,
    max_cells: int,
) -> tuple[list[tuple[int, int, int, str]], CapacityTimeline] | None:
    """The LP-rounded plan of the jobs ``order``: the LP over the jobs ``members`` (``order``'s
    and the unplaceable ones of its level, in index order), then the jobs of ``order`` by the
    LP's mean start slot, earliest first (alpha-point order; jobs the LP leaves out last, in
    ``order``). None where the LP is too large or fails."""
    weights = np.zeros(cost.shape)
    lp = preferred_cells(cost[members], duration_s[members], gpus[members], capacity, max_cells)
    if lp is None:
        return None
    weights[members] = lp
    by_slot = weights.sum(axis=1)
    mass = by_slot.sum(axis=1)
    mean_start = (by_slot * np.arange(by_slot.shape[1])).sum(axis=1) / np.maximum(mass, 1e-12)
    mean_start = np.where(mass > 1e-6, mean_start, np.inf)
    alpha = sorted(order, key=lambda k: float(mean_start[k]))  # stable: ties keep order
    working = copy.deepcopy(capacity)
    return rounding(working, alpha, weights), working


def plan_round(
    cost: FloatArray, grams: FloatArray, duration_s: FloatArray, gpus: IntArray,
    capacity: CapacityTimeline, order: Sequence[int], rounding: Rounding, *,
    relaxed: npt.NDArray[np.bool_], min_saving: float, deadline_s: FloatArray, margin: float,
    levels: IntArray, max_cells: int = 200_000,
) -> RoundPlan:  # fmt: skip
    """The round's plan for the jobs ``order`` (the greedy's planning order), one priority
    level (``levels``, ``(J,)``) at a time, highest first, each on the devices the levels
    above took: of the greedy plan, the greedy improved by single-job moves and the LP-rounded
    plan improved by them, the one with the fewest runs planned past their deadline
    (``deadline_s``, ``(J,)`` seconds from the grid's start; ``margin`` the duration margin),
    then the cheapest as planned (ties: the greedy's). The greedy's plan stands as it is when
    no job is ``relaxed`` (``(J,)``: its latest safe start is more than ``urgent_s`` away;
    with every job due soon there is nothing to look ahead into, and the greedy plans them by
    urgency) or when it gives every job its cheapest allowed cell (nothing to gain).

    ``cost`` is the planning cost ``(J, P, S)`` (``inf`` where not allowed), ``grams`` the
    estimated grams of every cell (the rescue path's cells have no planning cost).
    ``capacity`` is left untouched (each plan reserves on a copy).
    """
    ranks = sorted({int(levels[k]) for k in order}, reverse=True)
    if len(ranks) <= 1:  # every job in one LP (the unplaceable ones too: rows of their own)
        return _plan_level(
            cost, grams, duration_s, gpus, capacity, order, rounding, relaxed, min_saving,
            (deadline_s, margin), np.arange(len(cost)), max_cells,
        )  # fmt: skip
    working = copy.deepcopy(capacity)
    parts = []
    for rank in ranks:
        part = _plan_level(
            cost, grams, duration_s, gpus, working, [k for k in order if levels[k] == rank],
            rounding, relaxed, min_saving, (deadline_s, margin), np.flatnonzero(levels == rank),
            max_cells,
        )  # fmt: skip
        for k, p, s, _ in part.cells:
            working.reserve(p, s, float(duration_s[k, p]), int(gpus[k]))
        parts.append(part)
    return RoundPlan(
        tuple(c for part in parts for c in part.cells), sum(part.planned_g for part in parts),
        "lp" if any(part.source == "lp" for part in parts) else "greedy",
        sum(part.moves for part in parts), sum(part.unsafe for part in parts),
    )  # fmt: skip


def _plan_level(
    cost: FloatArray, grams: FloatArray, duration_s: FloatArray, gpus: IntArray,
    capacity: CapacityTimeline, order: Sequence[int], rounding: Rounding,
    relaxed: npt.NDArray[np.bool_], min_saving: float, deadline: tuple[FloatArray, float],
    members: IntArray, max_cells: int,
) -> RoundPlan:  # fmt: skip
    """:func:`plan_round` for the jobs ``order`` of one priority level (``members``: the
    level's jobs, for its LP)."""

    def plan(cells: list[tuple[int, int, int, str]], source: str, moves: int) -> RoundPlan:
        unsafe = _unsafe(capacity, duration_s, *deadline, cells)
        return RoundPlan(tuple(cells), _planned_g(cost, grams, cells), source, moves, unsafe)

    working = copy.deepcopy(capacity)
    cells = rounding(working, order, None)
    greedy = plan(cells, "greedy", 0)
    least = cost.reshape(len(cost), -1).min(axis=1, initial=np.inf)
    if not relaxed[list(order)].any() or all(
        cost[k, p, s] <= least[k] * (1.0 + _TOLERANCE) for k, p, s, _ in cells
    ):
        return greedy
    plans = [greedy]
    moves = improve(cost, duration_s, gpus, working, cells, min_saving)
    if moves:
        plans.append(plan(cells, "greedy", moves))
    rounded = _lp_rounded(cost, duration_s, gpus, capacity, order, rounding, members, max_cells)
    if rounded is not None:
        cells, working = rounded
        moves = improve(cost, duration_s, gpus, working, cells, min_saving)
        plans.append(plan(cells, "lp", moves))
    best = min(plans, key=lambda x: (x.unsafe, x.planned_g))
    if best.unsafe == greedy.unsafe and best.planned_g >= greedy.planned_g * (1.0 - _TOLERANCE):
        best = greedy
    return best
