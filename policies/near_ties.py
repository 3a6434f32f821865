"""Near-ties between planning costs: float noise must not decide a later start.

A flat forecast's slot means differ in their last bits (a zone at 31 g/kWh plans at
30.999999999998806 in one slot and 30.99999999999999 in the next), so "the cheapest cell"
alone would hold a job for hours for a saving of 1e-14. Costs within a relative ``tolerance``
of the cheapest (``cost <= least + tolerance x |least|``) are ties, and a tie goes to the
earliest start, then to the first pool. :func:`earliest_near` is the NumPy reference of
the planner (:func:`policies.greedy_reference.choose`, ``rescue``); the compiled greedy
(:mod:`policies.greedy_kernels`) takes the same cell with the same
floating-point operations.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["TOLERANCE", "WEIGHT_TOLERANCE", "earliest_near", "earliest_near_slots"]

TOLERANCE = 1e-9
"""The planners' relative tolerance: costs this close are ties (float noise must not decide a
hold, a later start or a look-ahead move)."""

WEIGHT_TOLERANCE = 1e-9
"""The look-ahead's rounding: LP weights (in [0, 1]) this close to the largest are ties (the
solver's noise must not decide a cell); of those cells the cheapest is taken, and of its
near-ties the earliest start, then the first pool, as the planners' own."""


def earliest_near(row: npt.NDArray[np.float64], tolerance: float) -> tuple[int, int]:
    """The (pool, slot) of ``row`` ``(P, S)`` (``inf``: not a candidate) to take: of the
    cells within ``tolerance`` (relative) of the cheapest, the earliest slot, then the first
    pool. ``row`` must hold a finite cell."""
    least = row.min()
    near = row <= least + tolerance * abs(least)
    s = int(np.argmax(near.any(axis=0)))
    return int(np.argmax(near[:, s])), s


def earliest_near_slots(cost: npt.NDArray[np.float64], tolerance: float) -> npt.NDArray[np.intp]:
    """Per row of ``cost`` (its last axis the slots; ``inf``: not a candidate), the earliest
    slot within ``tolerance`` (relative) of the row's cheapest: :func:`earliest_near` of one
    pool, for every pool at once (a row with no finite cell: slot 0, at ``inf``)."""
    least = cost.min(axis=-1, keepdims=True)
    near = cost <= least + tolerance * np.abs(least)
    slots: npt.NDArray[np.intp] = np.argmax(near, axis=-1)
    return slots
