"""The look-ahead's local search: single jobs moved to cheaper free cells.

:func:`policies.lookahead.plan_round` improves the greedy's plan and the LP-rounded plan with
it (docs/policies.md, "Look-ahead over capacity"). Its loop is compiled
(:func:`policies.greedy_kernels.moves_kernel`, beside the greedy kernel it calls: numba's cache
checks only a kernel's own file); ``tests/policies/test_lookahead_compiled.py`` holds it to
the NumPy reference it replaced.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from policies.capacity import CapacityTimeline, covered_instants
from policies.greedy_kernels import moves_kernel
from policies.near_ties import TOLERANCE as _TOLERANCE

__all__ = ["improve"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def improve(
    cost: FloatArray, duration_s: FloatArray, gpus: IntArray, capacity: CapacityTimeline,
    cells: list[tuple[int, int, int, str]], min_saving: float, passes: int = 2,
) -> int:  # fmt: skip
    """Move single jobs to cheaper free cells (in place); returns the number of moves.

    ``capacity`` holds every job of ``cells`` reserved (it is left as it is). Only jobs on an
    allowed cell move, only to an allowed cell free for their whole run; a move to a later slot
    must also beat the job's cheapest start-now cell free for its whole run (the other jobs'
    runs reserved; none free: no bound) by ``min_saving`` and the tolerance, as a hold must
    (``greedy_reference.choose``'s ``best_now``). Each pass takes the movable jobs in plan order; of
    the free cells within ``_TOLERANCE`` (relative) of the cheapest such cell, a job's target is the
    earliest start, then the first pool (:func:`policies.near_ties.earliest_near`), and it
    moves there when that is cheaper than its own cell by more than the tolerance
    (:func:`policies.greedy_kernels.moves_kernel`, compiled), so float noise neither picks a later
    slot nor makes a move.
    """
    n_pools, n_slots = cost.shape[1:]
    least = cost.reshape(len(cost), -1).min(axis=1, initial=np.inf)
    movable = [
        i for i, (k, p, s, _) in enumerate(cells) if np.isfinite(cost[k, p, s])
        and cost[k, p, s] > least[k] * (1.0 + _TOLERANCE)
    ]  # fmt: skip
    if not movable:
        return 0
    jobs = np.array([cells[i][0] for i in movable], dtype=np.int64)
    pool = np.array([cells[i][1] for i in movable], dtype=np.int64)
    slot = np.array([cells[i][2] for i in movable], dtype=np.int64)
    starts = np.broadcast_to(np.arange(n_slots), (len(jobs), n_pools, n_slots))
    _, ends = covered_instants(  # (M, P, S): one past the last instant each cell's run covers
        capacity, starts.ravel(), np.repeat(duration_s[jobs], n_slots, axis=1).ravel()
    )
    moves = int(
        moves_kernel(
            np.ascontiguousarray(cost[jobs]), ends.reshape(len(jobs), n_pools, n_slots),
            np.ascontiguousarray(gpus[jobs], dtype=np.int64), capacity.busy.copy(),
            capacity.size, float(min_saving), passes, pool, slot, _TOLERANCE,
        )
    )  # fmt: skip
    for m, i in enumerate(movable):
        k, _, _, note = cells[i]
        cells[i] = (k, int(pool[m]), int(slot[m]), note)
    return moves
