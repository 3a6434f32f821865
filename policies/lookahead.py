"""Look-ahead over capacity: the waiting jobs' (pool, start slot) assigned jointly by an LP.

The greedy planner gives each job in turn its cheapest free cell, so a job planned late finds
the clean pools taken by the *tentative* plans of jobs held for later, and starts at once in a
dirty region although the held jobs could have moved (the 12 h weakness in docs/policies.md).
Here one LP over every waiting job, solved with HiGHS each planning round, decides who gets
the clean device-slots:

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
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from policies.capacity import CapacityTimeline
from policies.errors import PoliciesError

__all__ = ["preferred_cells"]

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
    from scipy.optimize import linprog
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
    objective = np.concatenate((values, np.full(n_jobs, left_out)))
    try:
        solved = linprog(
            objective, A_ub=a_ub, b_ub=np.maximum(room, 0).astype(np.float64), A_eq=a_eq,
            b_eq=np.ones(n_jobs), bounds=(0, None), method="highs",
        )  # fmt: skip
    except (ValueError, PoliciesError):
        return None
    if solved.status != 0:
        return None
    weights = np.zeros(cost.shape)
    weights[job, pool, slot] = np.asarray(solved.x[:n], dtype=np.float64)
    return weights
