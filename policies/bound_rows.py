"""The capacity rows ``A @ x <= b`` of the LP bound (:mod:`policies.bound`, whose docstring
states them) over its cells: per pool, window length and window start, the GPU-seconds the runs
spend in the window counted at their least over the starts their slot allows; and per pool and
slot boundary, the devices of the runs that cover it from every start. A cell's coefficients do
not depend on the other cells, so the rows of a subset are read from those of all of them
(:func:`rows_of`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

__all__ = ["BoundCells", "capacity_rows", "rows_of"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class BoundCells:
    """The bound LP's variables: one per (job, pool, start slot), with the start interval
    (seconds after the origin) and the grams of a run from it."""

    job: IntArray
    pool: IntArray
    slot: IntArray
    lo_s: FloatArray  # earliest start in the slot, seconds after the origin
    hi_s: FloatArray  # latest start in the slot
    duration_s: FloatArray
    cost_g: FloatArray
    gpus: FloatArray


def _overlap(start: FloatArray, d: FloatArray, w0: FloatArray, w1: FloatArray) -> FloatArray:
    result: FloatArray = np.maximum(np.minimum(start + d, w1) - np.maximum(start, w0), 0.0)
    return result


def _covered(
    lo: FloatArray, hi: FloatArray, d: FloatArray, slot_s: float
) -> tuple[IntArray, IntArray]:
    """(cell, slot boundary) pairs where the run covers the boundary ``u`` from every start its
    slot allows (``hi <= u`` and ``u < lo + d``): per pool and boundary, those runs' devices are
    at most the pool's, whatever their starts."""
    first = np.ceil(hi / slot_s).astype(np.int64)
    end = np.ceil((lo + d) / slot_s - 1e-9).astype(np.int64)  # one past the last (fewer: valid)
    counts = np.maximum(end - first, 0)
    col = np.repeat(np.arange(len(lo)), counts)
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return col, np.repeat(first, counts) + within


def capacity_rows(
    cells: BoundCells, index: IntArray, sizes: IntArray, slot_s: float,
    window_lengths: Sequence[int],
) -> tuple[csr_matrix, FloatArray]:  # fmt: skip
    """The capacity rows ``A @ x <= b`` over the cells ``index`` (module docstring)."""
    from scipy.sparse import coo_matrix

    pool = cells.pool[index]
    slot = cells.slot[index]
    lo, hi, d, gpus = (
        cells.lo_s[index],
        cells.hi_s[index],
        cells.duration_s[index],
        cells.gpus[index],
    )
    span = math.ceil(float(d.max()) / slot_s) + 1
    cols: list[IntArray] = []
    vals: list[FloatArray] = []
    rhs: list[FloatArray] = []
    keys: list[IntArray] = []
    n_pools = len(sizes)
    base = int(slot.min()) - max(window_lengths)
    n_windows = int(slot.max()) + span + 1 - base
    for li, length in enumerate(window_lengths):
        for shift in range(-length + 1, span + 1):
            w = slot + shift
            w0 = (w * slot_s).astype(np.float64)
            w1 = w0 + length * slot_s
            least = np.minimum(_overlap(lo, d, w0, w1), _overlap(hi, d, w0, w1)) * gpus
            used = least > 0
            if not used.any():
                continue
            key = (li * n_pools + pool[used]) * n_windows + (w[used] - base)
            keys.append(key)
            cols.append(np.nonzero(used)[0])
            vals.append(least[used])
            rhs.append((sizes[pool[used]] * (length * slot_s)).astype(np.float64))
    col, u = _covered(lo, hi, d, slot_s)
    keys.append((len(window_lengths) * n_pools + pool[col]) * n_windows + (u - base))
    cols.append(col)
    vals.append(gpus[col])
    rhs.append(sizes[pool[col]].astype(np.float64))
    key_all = np.concatenate(keys)
    unique, row = np.unique(key_all, return_inverse=True)
    b_ub = np.zeros(len(unique))
    b_ub[row] = np.concatenate(rhs)
    a_ub = coo_matrix(
        (np.concatenate(vals), (row, np.concatenate(cols))), shape=(len(unique), len(index))
    ).tocsr()
    return a_ub, b_ub


def rows_of(whole: tuple[csr_matrix, FloatArray], index: IntArray) -> tuple[csr_matrix, FloatArray]:
    """:func:`capacity_rows` over the cells ``index`` read from its rows over all the cells: a
    cell's coefficients do not depend on the others, so these are the same rows, in the same
    order (those with no coefficient among ``index`` left out)."""
    a_ub, b_ub = whole
    columns = a_ub[:, index]
    kept = np.diff(columns.indptr) > 0
    return columns[kept], b_ub[kept]
