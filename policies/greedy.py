"""The planner's greedy assignment, compiled: each job in order takes its cheapest free cell.

This is :func:`policies.greedy_reference.choose` and :func:`~policies.greedy_reference.rescue`
(the reference the tests compare it with, decision by decision) as one numba loop over the
jobs, reserving on the :class:`~policies.capacity.CapacityTimeline`'s own arrays. Per job:

- the cheapest (pool, slot) that the devices allow for the whole run, each cell's cost raised
  by ``herd_penalty`` x the slot's used share; costs within ``tolerance`` (relative) of the
  cheapest are ties, which go to the earliest slot, then the first pool
  (:func:`policies.near_ties.earliest_near`). Pools are visited by their cheapest cell, and a
  pool whose cheapest cell costs at least the best found is skipped (the penalty factor is at
  least 1, so it cannot be cheaper; near-ties are looked for after, in the pools whose cheapest
  cell is within the tolerance, at the slots before the candidate's), as is a pool busy at
  every start instant;
- the job's planned cell instead, if it is free and costs at most ``replan_margin`` more;
- the ``min_saving`` rule: a later start that does not beat the best start now by that share
  becomes the start now;
- with no free cell before the latest safe start, the rescue path (``rescue``).

Costs, feasibility and reservations are computed with the same floating-point operations in the
same order as the NumPy reference, so the two agree exactly. The kernels are in
:mod:`policies.greedy_kernels`; this module holds their inputs and the calls.

:func:`assign_weighted` is the look-ahead's rounding (:mod:`policies.lookahead`): ``choose``
given the LP's weights, which takes the free cell of largest weight instead of the cheapest
(ties, within :data:`policies.near_ties.WEIGHT_TOLERANCE`: the cheapest, and of its near-ties
the earliest start, then the first pool), with the same ``min_saving`` rule and rescue path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from policies.capacity import CapacityTimeline
from policies.greedy_kernels import assign_kernel, assign_weighted_kernel
from policies.near_ties import WEIGHT_TOLERANCE

__all__ = ["NOTE_HOME", "NOTE_LATE", "NOTE_NONE", "GreedyInputs", "assign", "assign_weighted"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

NOTE_NONE, NOTE_HOME, NOTE_LATE = 0, 1, 2  # why: plain choice, home cannot run it, past latest


@dataclass(frozen=True, slots=True)
class GreedyInputs:
    """The scored jobs the greedy reads. Rows are indexed by ``rows[k]`` for the k-th job.

    ``cost`` ``(N, P, S)``: the planning cost, ``inf`` where not allowed (pool not allowed,
    slot after the latest safe start), except slot 0, read from ``cost_now`` ``(N, P)`` (it
    moves every tick: a separate array is cheaper to rewrite); ``intensity_g_per_kwh``
    ``(N, P, S)`` and ``intensity_now`` ``(N, P)`` likewise; ``energy_j``,
    ``embodied_g`` ``(N, P)`` and ``pue`` ``(P,)``: the grams the rescue path ranks by
    (operational as :func:`~policies.footprint.accounting.operational_g` computes it);
    ``lower`` ``(N, P)``: each pool's cheapest ``cost``; ``latest_start_s`` ``(N, P)``: the
    latest safe start (no slot after it is allowed); ``duration_s`` ``(N, P)`` (``inf``
    where inadmissible); ``left_s`` ``(N,)``: seconds from the grid's start to the deadline
    (``inf``: none); ``gpus`` ``(N,)``.
    """

    cost: FloatArray
    cost_now: FloatArray
    intensity_g_per_kwh: FloatArray
    intensity_now: FloatArray
    energy_j: FloatArray
    pue: FloatArray
    embodied_g: FloatArray
    lower: FloatArray
    latest_start_s: FloatArray
    allowed: BoolArray
    admissible: BoolArray
    duration_s: FloatArray
    left_s: FloatArray
    gpus: IntArray


def assign(
    rows: IntArray,
    inputs: GreedyInputs,
    capacity: CapacityTimeline,
    herd_penalty: float,
    min_saving: float,
    tolerance: float,
    duration_margin: float,
    planned: tuple[IntArray, IntArray] | None = None,
    replan_margin: float = 0.0,
) -> tuple[IntArray, IntArray, npt.NDArray[np.int8]]:
    """Assign the jobs ``rows`` in that order; returns (pool, slot, note) per job (``NOTE_*``)
    and leaves their runs reserved on ``capacity``. ``planned``: each job's plan as (pool,
    slot), in the order of ``rows`` (``-1``: none; :func:`policies.planner.planned_cells`)."""
    n = len(rows)
    if planned is None:
        planned = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
    pool = np.zeros(n, dtype=np.int64)
    slot = np.zeros(n, dtype=np.int64)
    note = np.zeros(n, dtype=np.int8)
    c = capacity.kernel_arrays()
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    # Each job's pools by their cheapest cell, sorted for all jobs in one NumPy call (a sort
    # per job inside the loop took most of its time); the order of equal bounds does not
    # matter: a tie goes to the first cell whatever the visiting order.
    by_lower = np.argsort(inputs.lower[rows], axis=1)
    assign_kernel(
        rows, by_lower, inputs.cost, inputs.cost_now,
        inputs.intensity_g_per_kwh, inputs.intensity_now,
        inputs.energy_j, inputs.pue, inputs.embodied_g, inputs.lower, inputs.latest_start_s,
        inputs.allowed, inputs.admissible, inputs.duration_s, inputs.left_s, inputs.gpus,
        c.offsets_s, c.hi_s, float(c.step_s), c.count, c.busy, c.levels, c.level_of, c.widths,
        c.size, c.load_gpu_s, c.used, c.full_gpu_s, c.min_busy, c.first_open,
        float(herd_penalty), float(min_saving), float(tolerance), float(duration_margin),
        np.ascontiguousarray(planned[0], dtype=np.int64),
        np.ascontiguousarray(planned[1], dtype=np.int64), float(replan_margin),
        pool, slot, note,
    )  # fmt: skip
    return pool, slot, note


def assign_weighted(
    rows: IntArray,
    inputs: GreedyInputs,
    weights: FloatArray,
    capacity: CapacityTimeline,
    herd_penalty: float,
    min_saving: float,
    tolerance: float,
    duration_margin: float,
) -> tuple[IntArray, IntArray, npt.NDArray[np.int8]]:
    """Assign the jobs ``rows`` in that order by the LP's ``weights`` (``(N, P, S)``, rows as
    ``inputs``'): each takes the free cell of largest weight; weights within
    ``WEIGHT_TOLERANCE`` of it are ties, which go to the cheapest cell, and costs within
    ``tolerance`` (relative) of that to the earliest start, then the first pool
    (:func:`policies.near_ties.earliest_near`); with no weight above ``1e-6`` on a free cell,
    the cheapest free cell (near-ties: the earliest; no ``replan_margin``: the LP decides). Then
    the ``min_saving`` rule and the rescue path as :func:`assign`. Returns (pool, slot, note)
    per job and leaves their runs reserved on ``capacity``. Unlike :func:`assign` it scans
    every slot: ``inputs.cost`` must be ``inf`` after each latest safe start, as the cost
    cube's planning cost is."""
    n = len(rows)
    pool = np.zeros(n, dtype=np.int64)
    slot = np.zeros(n, dtype=np.int64)
    note = np.zeros(n, dtype=np.int8)
    c = capacity.kernel_arrays()
    row = np.empty((inputs.cost.shape[1], c.count))  # one job's free costs, reused
    assign_weighted_kernel(
        np.ascontiguousarray(rows, dtype=np.int64), inputs.cost, inputs.cost_now,
        inputs.intensity_g_per_kwh, inputs.intensity_now, inputs.energy_j, inputs.pue,
        inputs.embodied_g, inputs.allowed, inputs.admissible, inputs.duration_s, inputs.left_s,
        inputs.gpus, weights,
        c.offsets_s, c.hi_s, float(c.step_s), c.count, c.busy, c.levels, c.level_of, c.widths,
        c.size, c.load_gpu_s, c.used, c.full_gpu_s, c.min_busy, c.first_open,
        float(herd_penalty), float(min_saving), float(tolerance), WEIGHT_TOLERANCE,
        float(duration_margin), row, pool, slot, note,
    )  # fmt: skip
    return pool, slot, note
