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
in the usual order), and gives each the free cell of largest weight (ties: the cheaper), else
its cheapest free cell; the usual rules hold (``min_saving`` against the free start-now cells,
deadline safety, the rescue path).

**Never worse than the greedy, as planned** (:func:`plan_round`): each round builds the
greedy's plan (the usual order, no weights), the same improved by moving single jobs to
cheaper free cells, and the LP-rounded plan improved the same way (a cell left free after
rounding is pure gain), and keeps the one of least planned grams; ties go to the greedy. All
obey the same rules, so the look-ahead departs from ``carbon-window`` only where its plan for
the queue is cheaper. No LP is solved when no job can wait (all due within ``urgent_s``) or
the greedy already gives every job its cheapest cell.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from policies.capacity import CapacityTimeline
from policies.errors import PoliciesError

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

__all__ = ["RoundPlan", "plan_round", "preferred_cells"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _coverage(
    capacity: CapacityTimeline, slot: IntArray, duration_s: FloatArray
) -> tuple[IntArray, IntArray]:
    """(first, one past the last) instant each run covers (as ``CapacityTimeline.reserve``)."""
    step = capacity.grid.step_s
    finite = np.where(np.isfinite(duration_s), duration_s, 0.0)
    end = np.ceil((capacity.offsets_s[slot] + finite) / step).astype(np.int64)
    end = np.minimum(np.maximum(end, slot + 1), len(capacity.offsets_s))
    return slot, end


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
    first, end = _coverage(capacity, slot, duration_s[job, pool])
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


Choose = Callable[[CapacityTimeline, int, FloatArray | None], tuple[int, int, str]]
"""``choose(capacity, job, weights) -> (pool, slot, note)``: the planner's rule for one job
(reserves its devices on ``capacity``)."""


@dataclass(frozen=True, slots=True)
class RoundPlan:
    """One round's plan: ``cells`` is ``(job, pool, slot, note)`` in planning order."""

    cells: tuple[tuple[int, int, int, str], ...]
    planned_g: float  # the plan's planning cost (grams where a job took the rescue path)
    source: str  # "greedy" or "lp"
    moves: int  # single-job moves the local search made


def _planned_g(
    cost: FloatArray, grams: FloatArray, cells: Sequence[tuple[int, int, int, str]]
) -> float:
    total = 0.0
    for k, p, s, _ in cells:
        c = float(cost[k, p, s])
        total += c if np.isfinite(c) else float(grams[k, p, s])
    return total


def _improve(
    cost: FloatArray, duration_s: FloatArray, gpus: IntArray, capacity: CapacityTimeline,
    cells: list[tuple[int, int, int, str]], min_saving: float, passes: int = 2,
) -> int:  # fmt: skip
    """Move single jobs to cheaper free cells (in place); returns the number of moves.

    ``capacity`` holds every job of ``cells`` reserved. Only jobs on an allowed cell move, only
    to an allowed cell free for their whole run; a move to a later slot must also beat the
    job's cheapest start-now cell (ignoring capacity) by ``min_saving``, as a hold must.
    """
    n_pools, n_slots = cost.shape[1:]
    slots = np.broadcast_to(np.arange(n_slots), (n_pools, n_slots))
    least = cost.reshape(len(cost), -1).min(axis=1, initial=np.inf)
    movable = [
        i for i, (k, p, s, _) in enumerate(cells) if np.isfinite(cost[k, p, s])
        and cost[k, p, s] > least[k] * (1.0 + 1e-9)
    ]  # fmt: skip
    if not movable:
        return 0
    ends = {}
    for i in movable:
        k = cells[i][0]
        _, end = _coverage(capacity, slots.ravel(), np.repeat(duration_s[k], n_slots))
        ends[i] = end.reshape(n_pools, n_slots)
    width = max(int((end - slots).max(initial=1)) for end in ends.values())
    inside = {  # (P, S, width): the instants each cell's run covers, from its start
        i: np.arange(width)[None, None, :] < (end - slots)[:, :, None] for i, end in ends.items()
    }
    busy = np.pad(capacity.busy, ((0, 0), (0, width)))  # moves update it in place
    # (P, S, width): the devices in use at each of the ``width`` instants from each slot (a view)
    windows = np.lib.stride_tricks.sliding_window_view(busy, width, axis=1)[:, :n_slots]
    size = capacity.size[:, None]
    moves = 0
    for _ in range(passes):
        moved = False
        for i in movable:
            k, p, s, note = cells[i]
            end = ends[i]
            busy[p, s : end[p, s]] -= gpus[k]
            in_use = np.where(inside[i], windows, 0).max(axis=2)
            row = np.where(in_use + gpus[k] <= size, cost[k], np.inf)
            if s == 0:  # a start that becomes a hold must beat starting now by min_saving
                hold_below = (1.0 - min_saving) * float(cost[k, :, 0].min())
                row[:, 1:] = np.where(row[:, 1:] < hold_below, row[:, 1:], np.inf)
            q, t = (int(x) for x in np.unravel_index(int(np.argmin(row)), row.shape))
            if row[q, t] < cost[k, p, s] * (1.0 - 1e-9):
                cells[i] = (k, q, t, note)
                moves += 1
                moved = True
            else:
                q, t = p, s
            busy[q, t : end[q, t]] += gpus[k]
        if not moved:
            break
    return moves


def _rounded(
    capacity: CapacityTimeline, order: Sequence[int], choose: Choose, weights: FloatArray | None
) -> tuple[list[tuple[int, int, int, str]], CapacityTimeline]:
    """Each job of ``order`` in turn by the planner's rule, on a copy of ``capacity``."""
    working = copy.deepcopy(capacity)
    cells = []
    for k in order:
        p, s, note = choose(working, k, None if weights is None else weights[k])
        cells.append((k, p, s, note))
    return cells, working


def plan_round(
    cost: FloatArray, grams: FloatArray, duration_s: FloatArray, gpus: IntArray,
    capacity: CapacityTimeline, order: Sequence[int], choose: Choose, *,
    relaxed: npt.NDArray[np.bool_], min_saving: float, max_cells: int = 200_000,
) -> RoundPlan:  # fmt: skip
    """The round's plan for the jobs ``order`` (the greedy's planning order): the cheapest, as
    planned, of the greedy plan, the greedy improved by single-job moves and the LP-rounded
    plan improved by them (ties: the greedy's). The greedy's plan stands as it is when no job is
    ``relaxed`` (``(J,)``: its latest safe start is more than ``urgent_s`` away; with every
    job due soon there is nothing to look ahead into, and the greedy plans them by urgency) or
    when it gives every job its cheapest allowed cell (nothing to gain).

    ``cost`` is the planning cost ``(J, P, S)`` (``inf`` where not allowed), ``grams`` the
    estimated grams of every cell (the rescue path's cells have no planning cost).
    ``capacity`` is left untouched (each plan reserves on a copy).
    """
    cells, working = _rounded(capacity, order, choose, None)
    greedy = RoundPlan(tuple(cells), _planned_g(cost, grams, cells), "greedy", 0)
    least = cost.reshape(len(cost), -1).min(axis=1, initial=np.inf)
    if not relaxed[list(order)].any() or all(
        cost[k, p, s] <= least[k] * (1.0 + 1e-9) for k, p, s, _ in cells
    ):
        return greedy
    plans = [greedy]
    moves = _improve(cost, duration_s, gpus, working, cells, min_saving)
    if moves:
        plans.append(RoundPlan(tuple(cells), _planned_g(cost, grams, cells), "greedy", moves))
    weights = preferred_cells(cost, duration_s, gpus, capacity, max_cells)
    if weights is not None:  # alpha-point order: by the LP's mean start, earliest first
        by_slot = weights.sum(axis=1)
        mass = by_slot.sum(axis=1)
        mean_start = (by_slot * np.arange(by_slot.shape[1])).sum(axis=1) / np.maximum(mass, 1e-12)
        mean_start = np.where(mass > 1e-6, mean_start, np.inf)
        alpha = sorted(order, key=lambda k: float(mean_start[k]))  # stable: ties keep order
        cells, working = _rounded(capacity, alpha, choose, weights)
        moves = _improve(cost, duration_s, gpus, working, cells, min_saving)
        plans.append(RoundPlan(tuple(cells), _planned_g(cost, grams, cells), "lp", moves))
    best = min(plans, key=lambda plan: plan.planned_g)
    if best.planned_g >= greedy.planned_g * (1.0 - 1e-9):
        best = greedy
    return best
