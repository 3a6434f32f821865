"""A lower bound from the Lagrangian dual of an assignment LP, by subgradient ascent.

The LP: minimise ``c @ x`` over ``x >= 0`` with, for every job, its cells' ``x`` summing to 1,
and ``A @ x <= b`` (``A >= 0``: the capacity rows of :mod:`policies.bound`). For any prices
``lam >= 0`` on the rows of ``A``,

    L(lam) = sum over jobs of min over the job's cells of (c + A.T @ lam)  -  lam @ b

is at most the LP's optimum (weak duality: for a feasible ``x``, ``c @ x >= c @ x + lam @ (A @ x
- b) >= L(lam)``), so **every** ``lam`` tried gives a valid lower bound, and the best of them is
returned. ``L`` needs no LP solver: a sparse product and a minimum per job. Its maximum over
``lam`` equals the LP's optimum (each job's cells form a simplex, whose vertices are integral),
which is what makes it worth climbing where the LP is too large to solve whole.

The ascent (Held, Wolfe and Crowder 1974; Camerini, Fratta and Maffioli 1975 for the
deflection): the subgradient at ``lam`` is ``A @ x - b`` for the cheapest cell of every job,
the step is Polyak's towards a target a little above the best value so far (the target's
margin widens after an improvement and narrows after a miss), and each direction keeps
``deflection`` of the one before, which damps the zig-zag between rows that bind in turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

__all__ = ["DualBound", "lagrangian_bound"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class DualBound:
    """The best ``L(lam)`` found (a lower bound on the LP) and the ascent steps taken."""

    value: float
    steps: int


def lagrangian_bound(
    cost: FloatArray,
    job: IntArray,
    a_ub: csr_matrix,
    b_ub: FloatArray,
    *,
    max_steps: int = 1_000,
    stall_steps: int = 100,
    min_gain: float = 1e-4,
    deflection: float = 0.7,
) -> DualBound:
    """The Lagrangian dual bound of the LP in the module docstring, climbed from ``lam = 0``.

    ``job`` numbers each cell's job and must be sorted (a job's cells side by side). Stops
    after ``max_steps``, or when ``stall_steps`` steps raised the best value by less than
    ``min_gain`` of it.

    Raises:
        ValueError: ``job`` is not sorted or the shapes disagree.
    """
    n = len(cost)
    if a_ub.shape != (len(b_ub), n) or len(job) != n:
        raise ValueError("cost, job, a_ub and b_ub do not describe one LP")
    if n == 0:
        return DualBound(0.0, 0)
    if np.any(np.diff(job) < 0):
        raise ValueError("job must be sorted: each job's cells side by side")
    starts = np.flatnonzero(np.r_[True, job[1:] != job[:-1]])
    counts = np.diff(np.r_[starts, n])
    a_t = a_ub.T  # a view (CSC), no copy

    def evaluate(lam: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        reduced: FloatArray = cost + a_t @ lam
        least: FloatArray = np.minimum.reduceat(reduced, starts)
        return float(least.sum() - lam @ b_ub), reduced, least

    lam = np.zeros(len(b_ub))
    value, reduced, least = evaluate(lam)
    best, checkpoint, margin = value, value, 0.05
    direction = np.zeros(len(b_ub))
    step = 0
    while step < max_steps:
        step += 1
        cheapest = np.flatnonzero(reduced <= np.repeat(least, counts))
        cheapest = cheapest[np.r_[True, job[cheapest][1:] != job[cheapest][:-1]]]
        chosen = np.zeros(n)
        chosen[cheapest] = 1.0
        gradient: FloatArray = a_ub @ chosen - b_ub
        gradient[(lam <= 0.0) & (gradient < 0.0)] = 0.0  # a free row cannot go below 0
        if not gradient.any():  # the cheapest cells fit and every priced row is full: optimal
            break
        direction = gradient + deflection * direction
        norm = float(direction @ direction)
        if norm == 0.0:
            break
        target = best + margin * abs(best) + 1e-9
        lam = np.maximum(lam + (target - value) / norm * direction, 0.0)
        value, reduced, least = evaluate(lam)
        if value > best:
            best, margin = value, min(margin * 1.5, 0.2)
        else:
            margin = max(margin * 0.9, 1e-4)
        if step % stall_steps == 0:
            if best - checkpoint < min_gain * abs(checkpoint):
                break
            checkpoint = best
    return DualBound(best, step)
