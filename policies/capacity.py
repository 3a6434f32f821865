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

from policies.scoring import Pool, SlotGrid

__all__ = ["CapacityTimeline", "KernelArrays"]

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
        self.busy = np.zeros((len(pools), n_slots), dtype=np.int64)
        self.load_gpu_s = np.zeros((len(pools), n_slots))
        self.size = np.zeros(len(pools), dtype=np.int64)
        for p, pool in enumerate(pools):
            available = [d for d in pool.devices if d.available]
            self.size[p] = len(available)
            ends = [(d.busy_until - grid.start).total_seconds()
                    for d in available if d.busy_until is not None]  # fmt: skip
            if ends:  # all the pool's busy devices at once; loads summed in device order
                end_s = np.array(ends)[:, None]
                self.busy[p] = (self.offsets_s[None, :] < end_s).sum(axis=0)
                overlap = self._overlap_s(grid.first_offset_s, end_s)
                self.load_gpu_s[p] = np.cumsum(overlap, axis=0)[-1]
        lengths = np.arange(n_slots + 1)
        self._level_of: IntArray = np.log2(np.maximum(lengths, 1)).astype(np.int64)
        self._widths: IntArray = 1 << np.arange(int(self._level_of[-1]) + 1, dtype=np.int64)
        self._levels = _sparse_table(self.busy, self._widths)
        self._rows = np.arange(len(pools))[:, None]
        self._slots = np.arange(grid.count)
        span_s = self._hi_s[: grid.count] - self.offsets_s[: grid.count]
        self._full_gpu_s = self.size[:, None] * span_s[None, :]
        self._used = self._fraction(self.load_gpu_s[:, : grid.count], self._full_gpu_s)
        self._min_busy: IntArray = self.busy[:, : grid.count].min(axis=1)
        self._first_open: IntArray = np.array(
            [self._open_from(p) for p in range(len(pools))], dtype=np.int64
        )

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


def _sparse_table(rows: IntArray, widths: IntArray) -> IntArray:
    """``table[k, r, i] = rows[r, i : i + widths[k]].max()`` (zeros past the end)."""
    table = np.zeros((len(widths), *rows.shape), dtype=np.int64)
    table[0] = rows
    for k in range(1, len(widths)):
        half = int(widths[k - 1])
        table[k] = table[k - 1]
        np.maximum(table[k, :, :-half], table[k - 1, :, half:], out=table[k, :, :-half])
    return table
