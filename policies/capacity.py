"""Capacity over the planning horizon: free GPU-seconds of every pool in every start slot.

Planning is fluid: a pool of ``n`` free GPUs offers ``n * step_s`` GPU-seconds per slot, and a
job of ``d`` seconds on ``g`` GPUs starting in slot ``s`` takes ``g * d`` GPU-seconds from slots
``s, s+1, ...`` in order. Devices busy until ``t`` contribute from ``t`` on. Beyond the horizon
every pool is assumed free. The timeline is the working state of one planning call only.
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
    """Free GPU-seconds per (pool, slot), reserved job by job.

    ``pad`` extra slots past the horizon let a job that starts near the end run past it.
    """

    __slots__ = ("_full", "free", "free_now", "grid")

    def __init__(self, pools: Sequence[Pool], grid: SlotGrid, pad: int = 0) -> None:
        self.grid = grid
        n_slots = grid.count + max(pad, 0)
        hi = (np.arange(n_slots, dtype=np.float64) + 1.0) * grid.step_s
        lo = np.minimum(np.maximum(hi - grid.step_s, grid.first_offset_s), hi)
        self.free = np.zeros((len(pools), n_slots))
        self.free_now = np.zeros(len(pools), dtype=np.int64)
        for p, pool in enumerate(pools):
            for device in pool.devices:
                if not device.available:
                    continue
                ready = 0.0
                if device.busy_until is not None:
                    ready = max(0.0, (device.busy_until - grid.start).total_seconds())
                self.free[p] += np.clip(hi - np.maximum(lo, ready), 0.0, hi - lo)
                self.free_now[p] += ready <= grid.first_offset_s
        sizes = np.array([max(pool.size, 1) for pool in pools], dtype=np.float64)
        self._full = sizes[:, None] * (hi - lo)[None, :]  # GPU-seconds of a free pool

    def slots_for(self, duration_s: FloatArray) -> IntArray:
        """Slots a run of ``duration_s`` touches when it starts at a slot boundary (>= 1)."""
        finite = np.where(np.isfinite(duration_s), duration_s, 0.0)
        return np.maximum(np.ceil(finite / self.grid.step_s), 1).astype(np.int64)

    def feasible(
        self, need_gpu_s: FloatArray, slots: IntArray, gpus: int = 1
    ) -> npt.NDArray[np.bool_]:
        """Which (pool, start slot) can hold ``need_gpu_s[p]`` over ``slots[p]`` slots.

        A start needs some free time in its first slot and enough GPU-seconds over the slots
        the run spans; runs past the padded horizon count the missing slots as fully free. A
        start in slot 0 (now) also needs ``gpus`` devices idle now and not yet taken.
        """
        n_pools, n_slots = self.free.shape
        cum = np.concatenate((np.zeros((n_pools, 1)), np.cumsum(self.free, axis=1)), axis=1)
        starts = np.arange(self.grid.count)
        ends = starts[None, :] + slots[:, None]
        beyond = np.maximum(ends - n_slots, 0)
        ends = np.minimum(ends, n_slots)
        window = np.take_along_axis(cum, ends, axis=1) - cum[:, starts]
        window = window + beyond * self._full[:, -1:]
        first = self.free[:, : self.grid.count] > 1e-9
        result: npt.NDArray[np.bool_] = first & (window >= need_gpu_s[:, None] - 1e-6)
        result[:, 0] &= self.free_now >= gpus
        return result

    def used_fraction(self) -> FloatArray:
        """Share of each (pool, slot) already taken, in [0, 1], shape ``(P, S)``."""
        free = self.free[:, : self.grid.count]
        full = np.maximum(self._full[:, : self.grid.count], 1e-9)
        result: FloatArray = np.clip(1.0 - free / full, 0.0, 1.0)
        return result

    def reserve(self, pool: int, slot: int, need_gpu_s: float, gpus: int = 1) -> None:
        """Take ``need_gpu_s`` GPU-seconds from ``pool`` starting at ``slot``, filling in order
        (and ``gpus`` of its idle devices when ``slot`` is 0)."""
        if slot == 0:
            self.free_now[pool] = max(0, int(self.free_now[pool]) - gpus)
        left = need_gpu_s
        row = self.free[pool]
        s = slot
        while left > 1e-9 and s < len(row):
            take = min(row[s], left)
            row[s] -= take
            left -= take
            s += 1
        if not math.isfinite(left):  # pragma: no cover - callers pass finite needs
            raise ValueError("need_gpu_s must be finite")
