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

import numpy as np
import numpy.typing as npt

from policies.scoring import Pool, SlotGrid

__all__ = ["CapacityTimeline"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class CapacityTimeline:
    """Devices in use per (pool, start instant), reserved job by job.

    ``pad`` extra instants past the horizon let a run that starts near the end go past it.
    """

    __slots__ = ("_bounds_s", "_levels", "busy", "grid", "load_gpu_s", "offsets_s", "size")

    def __init__(self, pools: Sequence[Pool], grid: SlotGrid, pad: int = 0) -> None:
        self.grid = grid
        n_slots = grid.count + max(pad, 0)
        self.offsets_s: FloatArray = np.maximum(
            np.arange(n_slots, dtype=np.float64) * grid.step_s, grid.first_offset_s
        )
        hi = (np.arange(n_slots, dtype=np.float64) + 1.0) * grid.step_s
        self._bounds_s = (self.offsets_s, hi)
        self.busy = np.zeros((len(pools), n_slots), dtype=np.int64)
        self.load_gpu_s = np.zeros((len(pools), n_slots))
        self.size = np.zeros(len(pools), dtype=np.int64)
        for p, pool in enumerate(pools):
            for device in pool.devices:
                if not device.available:
                    continue
                self.size[p] += 1
                if device.busy_until is not None:
                    end_s = (device.busy_until - grid.start).total_seconds()
                    self.busy[p] += self.offsets_s < end_s
                    self.load_gpu_s[p] += self._overlap_s(grid.first_offset_s, end_s)
        self._levels: IntArray | None = None

    def _overlap_s(self, start_s: float, end_s: float) -> FloatArray:
        """Seconds of ``[start_s, end_s)`` in each slot."""
        lo, hi = self._bounds_s
        result: FloatArray = np.clip(np.minimum(hi, end_s) - np.maximum(lo, start_s), 0.0, None)
        return result

    def _ends(self, duration_s: FloatArray, slots: IntArray) -> IntArray:
        """One past the last instant covered by runs of ``duration_s[p]`` from ``slots``."""
        finite = np.where(np.isfinite(duration_s), duration_s, 0.0)
        start = self.offsets_s[slots]
        ends = np.ceil((start + finite[:, None]) / self.grid.step_s).astype(np.int64)
        result: IntArray = np.clip(ends, slots + 1, self.busy.shape[1])
        return result

    def _window_max(self, starts: IntArray, ends: IntArray) -> IntArray:
        """``busy[p, starts[p, s]:ends[p, s]].max()`` for every cell (a sparse table)."""
        if self._levels is None:
            levels = [self.busy]
            width = 1
            while 2 * width <= self.busy.shape[1]:
                last = levels[-1]
                shifted = np.zeros_like(last)
                shifted[:, :-width] = last[:, width:]
                levels.append(np.maximum(last, shifted))
                width *= 2
            self._levels = np.stack(levels)
        length = ends - starts
        level = np.floor(np.log2(np.maximum(length, 1))).astype(np.int64)
        rows = np.arange(self.busy.shape[0])[:, None]
        left = self._levels[level, rows, starts]
        right = self._levels[level, rows, ends - (1 << level)]
        result: IntArray = np.maximum(left, right)
        return result

    def feasible(self, duration_s: FloatArray, gpus: int = 1) -> npt.NDArray[np.bool_]:
        """Which (pool, start slot) have ``gpus`` devices free for the whole of a run of
        ``duration_s[p]`` seconds, shape ``(P, S)``; a non-finite duration counts as instant."""
        slots = np.broadcast_to(np.arange(self.grid.count), (self.busy.shape[0], self.grid.count))
        in_use = self._window_max(slots, self._ends(duration_s, slots))
        result: npt.NDArray[np.bool_] = in_use + gpus <= self.size[:, None]
        return result

    def used_fraction(self) -> FloatArray:
        """Share of each (pool, slot)'s GPU-seconds in use, in [0, 1], shape ``(P, S)``."""
        lo, hi = self._bounds_s
        count = self.grid.count
        full = self.size[:, None] * (hi - lo)[None, :count]
        used = self.load_gpu_s[:, :count]
        result: FloatArray = np.where(full > 0, np.clip(used / np.maximum(full, 1e-9), 0, 1), 1.0)
        return result

    def reserve(self, pool: int, slot: int, duration_s: float, gpus: int = 1) -> None:
        """Take ``gpus`` devices of ``pool`` for a run of ``duration_s`` from ``slot``."""
        end = int(self._ends(np.array([duration_s]), np.array([[slot]]))[0, 0])
        self.busy[pool, slot:end] += gpus
        self._levels = None
        if math.isfinite(duration_s):
            start_s = float(self.offsets_s[slot])
            self.load_gpu_s[pool] += gpus * self._overlap_s(start_s, start_s + duration_s)
