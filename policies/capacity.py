"""Capacity over the planning horizon: devices in use per pool at every start instant.

Planned runs start only at the grid's start instants (slot 0 is now, slot ``s >= 1`` its
boundary). A run of ``d`` seconds from instant ``t_s`` covers the instants ``t_s <= t < t_s + d``;
devices busy until ``b`` cover the instants before ``b``. Because every run starts at an instant,
the number of devices in use can only fall between two instants, so a pool of ``n`` devices can
host ``g`` more devices over ``[t_s, t_s + d)`` exactly when fewer than ``n - g + 1`` are in use at
each instant it covers, and identical devices can then be assigned without conflicts (interval
scheduling). This is discrete: a job is never planned into a slot where all of its pool's GPUs
are still running other jobs. Beyond the padded horizon every pool is free.

Alongside, the timeline keeps the GPU-seconds in use in every slot, the load that
anti-herding weighs (a two-minute job takes a device at an instant but little of its slot).
The timeline is the working state of one planning call only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from policies.compiled import compiled
from policies.scoring import Pool, SlotGrid

__all__ = ["CapacityTimeline", "KernelArrays", "covered_instants"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class KernelArrays:
    """The timeline's arrays, for compiled code that reserves in place
    (:mod:`policies.greedy`); ``min_busy`` is each pool's least busy start instant,
    ``first_open`` its first start instant with a device free (``count``: none)."""

    offsets_s: FloatArray
    hi_s: FloatArray
    step_s: int
    count: int
    busy: IntArray
    levels: IntArray
    level_of: IntArray
    widths: IntArray
    size: IntArray
    load_gpu_s: FloatArray
    used: FloatArray
    full_gpu_s: FloatArray
    min_busy: IntArray
    first_open: IntArray


class CapacityTimeline:
    """Devices in use per (pool, start instant), reserved job by job.

    ``pad`` extra instants past the horizon let a run that starts near the end go past it.
    Window maxima of the devices in use come from a sparse table (``_levels[k, p, i]`` is the
    most in use over instants ``i .. i + 2**k - 1``), updated per pool on each reservation.
    """

    __slots__ = (
        "_first_open",
        "_full_gpu_s",
        "_hi_s",
        "_level_of",
        "_levels",
        "_min_busy",
        "_rows",
        "_slots",
        "_used",
        "_widths",
        "busy",
        "grid",
        "load_gpu_s",
        "offsets_s",
        "size",
    )  # fmt: skip

    def __init__(self, pools: Sequence[Pool], grid: SlotGrid, pad: int = 0) -> None:
        self.grid = grid
        n_slots = grid.count + max(pad, 0)
        self.offsets_s: FloatArray = np.maximum(
            np.arange(n_slots, dtype=np.float64) * grid.step_s, grid.first_offset_s
        )
        self._hi_s: FloatArray = (np.arange(n_slots, dtype=np.float64) + 1.0) * grid.step_s
        n_pools = len(pools)
        self.busy = np.zeros((n_pools, n_slots), dtype=np.int64)
        self.load_gpu_s = np.zeros((n_pools, n_slots))
        self.size = np.zeros(n_pools, dtype=np.int64)
        ends: list[float] = []  # every pool's busy devices' ends, in pool then device order
        owner: list[int] = []
        for p, pool in enumerate(pools):
            available = [d for d in pool.devices if d.available]
            self.size[p] = len(available)
            for d in available:
                if d.busy_until is not None:
                    ends.append((d.busy_until - grid.start).total_seconds())
                    owner.append(p)
        lengths = np.arange(n_slots + 1)
        self._level_of: IntArray = np.log2(np.maximum(lengths, 1)).astype(np.int64)
        self._widths: IntArray = 1 << np.arange(int(self._level_of[-1]) + 1, dtype=np.int64)
        self._levels = np.zeros((len(self._widths), n_pools, n_slots), dtype=np.int64)
        self._rows = np.arange(n_pools)[:, None]
        self._slots = np.arange(grid.count)
        self._full_gpu_s: FloatArray = np.empty((n_pools, grid.count))
        self._used: FloatArray = np.empty((n_pools, grid.count))
        self._min_busy: IntArray = np.empty(n_pools, dtype=np.int64)
        self._first_open: IntArray = np.empty(n_pools, dtype=np.int64)
        _build(self.offsets_s, self._hi_s, float(grid.first_offset_s), grid.count,
               np.array(ends, dtype=np.float64), np.array(owner, dtype=np.int64), self.size,
               self._widths, self.busy, self.load_gpu_s, self._levels, self._full_gpu_s,
               self._used, self._min_busy, self._first_open)  # fmt: skip

    def kernel_arrays(self) -> KernelArrays:
        """The arrays compiled code reads and updates in place (the same objects)."""
        return KernelArrays(
            self.offsets_s, self._hi_s, self.grid.step_s, self.grid.count, self.busy,
            self._levels, self._level_of, self._widths, self.size, self.load_gpu_s, self._used,
            self._full_gpu_s, self._min_busy, self._first_open,
        )  # fmt: skip

    def _open_from(self, pool: int) -> int:
        """The pool's first start instant with a device free (``count``: none)."""
        full = self.busy[pool, : self.grid.count] >= self.size[pool]
        return int(np.argmin(full)) if not full.all() else self.grid.count

    def _overlap_s(self, start_s: float, end_s: float | FloatArray) -> FloatArray:
        """Seconds of ``[start_s, end_s)`` in each slot (one row per end, given ``(D, 1)``)."""
        seconds = np.minimum(self._hi_s, end_s) - np.maximum(self.offsets_s, start_s)
        result: FloatArray = np.maximum(seconds, 0.0)
        return result

    @staticmethod
    def _fraction(used: FloatArray, full: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            result: FloatArray = np.where(full > 0, np.minimum(used / full, 1.0), 1.0)
        return result

    def feasible(self, duration_s: FloatArray, gpus: int = 1) -> npt.NDArray[np.bool_]:
        """Which (pool, start slot) have ``gpus`` devices free for the whole of a run of
        ``duration_s[p]`` seconds, shape ``(P, S)``; a non-finite duration counts as instant."""
        finite = np.where(np.isfinite(duration_s), duration_s, 0.0)
        ends = (self.offsets_s[None, : self.grid.count] + finite[:, None]) / self.grid.step_s
        end = np.ceil(ends).astype(np.int64)  # one past the last instant covered
        np.maximum(end, self._slots + 1, out=end)
        np.minimum(end, self.busy.shape[1], out=end)
        level = self._level_of[end - self._slots]
        left = self._levels[level, self._rows, self._slots]
        right = self._levels[level, self._rows, end - self._widths[level]]
        result: npt.NDArray[np.bool_] = np.maximum(left, right) + gpus <= self.size[:, None]
        return result

    def used_fraction(self) -> FloatArray:
        """Share of each (pool, slot)'s GPU-seconds in use, in [0, 1], shape ``(P, S)``."""
        return self._used

    def reserve(self, pool: int, slot: int, duration_s: float, gpus: int = 1) -> None:
        """Take ``gpus`` devices of ``pool`` for a run of ``duration_s`` from ``slot``."""
        start_s = float(self.offsets_s[slot])
        finite = duration_s if math.isfinite(duration_s) else 0.0
        end = min(
            max(math.ceil((start_s + finite) / self.grid.step_s), slot + 1), len(self.offsets_s)
        )
        self.busy[pool, slot:end] += gpus
        self._levels[:, pool] = _sparse_table(self.busy[pool : pool + 1], self._widths)[:, 0]
        self.load_gpu_s[pool] += gpus * self._overlap_s(start_s, start_s + finite)
        count = self.grid.count
        self._used[pool] = self._fraction(self.load_gpu_s[pool, :count], self._full_gpu_s[pool])
        self._min_busy[pool] = self.busy[pool, :count].min()
        self._first_open[pool] = self._open_from(pool)


def covered_instants(
    capacity: CapacityTimeline, slot: IntArray, duration_s: FloatArray
) -> tuple[IntArray, IntArray]:
    """(first, one past the last) instant each run covers (as ``CapacityTimeline.reserve``)."""
    step = capacity.grid.step_s
    finite = np.where(np.isfinite(duration_s), duration_s, 0.0)
    end = np.ceil((capacity.offsets_s[slot] + finite) / step).astype(np.int64)
    end = np.minimum(np.maximum(end, slot + 1), len(capacity.offsets_s))
    return slot, end


def _sparse_table(rows: IntArray, widths: IntArray) -> IntArray:
    """``table[k, r, i] = rows[r, i : i + widths[k]].max()`` (zeros past the end)."""
    table = np.zeros((len(widths), *rows.shape), dtype=np.int64)
    table[0] = rows
    for k in range(1, len(widths)):
        half = int(widths[k - 1])
        table[k] = table[k - 1]
        np.maximum(table[k, :, :-half], table[k - 1, :, half:], out=table[k, :, :-half])
    return table


@compiled
def _build(offsets, hi, first_s, count, ends, owner, size, widths, busy, load, levels, full,  # type: ignore[no-untyped-def]
           used, min_busy, first_open):  # fmt: skip
    """The timeline's arrays from the busy devices' ends (seconds after the grid's anchor,
    ``owner``: each one's pool, in pool then device order), by the NumPy expressions'
    operations in their order: a device counts at the instants before its end, the loads sum
    each device's overlap with each slot in device order (the first device's overlap is the
    first sum, as ``np.cumsum``'s), the window maxima as :func:`_sparse_table`'s, the used
    share as ``_fraction``'s."""
    n_pools, n = busy.shape
    seen = np.zeros(n_pools, dtype=np.bool_)
    for k in range(len(ends)):
        p, end = owner[k], ends[k]
        for i in range(n):
            if offsets[i] < end:
                busy[p, i] += 1
            seconds = max(min(hi[i], end) - max(offsets[i], first_s), 0.0)
            load[p, i] = load[p, i] + seconds if seen[p] else seconds
        seen[p] = True
    levels[0] = busy
    for k in range(1, len(widths)):
        half = widths[k - 1]
        for p in range(n_pools):
            for i in range(n):
                levels[k, p, i] = levels[k - 1, p, i]
                if i < n - half:
                    levels[k, p, i] = max(levels[k - 1, p, i], levels[k - 1, p, i + half])
    for p in range(n_pools):
        lowest, first = busy[p, 0], count
        for i in range(count):
            f = size[p] * (hi[i] - offsets[i])
            full[p, i] = f
            used[p, i] = min(load[p, i] / f, 1.0) if f > 0 else 1.0
            lowest = min(lowest, busy[p, i])
            if first == count and busy[p, i] < size[p]:
                first = i
        min_busy[p] = lowest
        first_open[p] = first
