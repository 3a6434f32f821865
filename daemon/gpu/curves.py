"""Per-job power, temperature and fan curves at a bounded resolution.

Readings fall into bins of ``resolution_s`` from the job's start: power is the bin's mean,
temperature and fan its maximum. When a job outlives ``max_points`` bins, neighbouring bins merge
and the resolution doubles, so a curve never holds more than ``max_points`` points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from daemon.gpu.backend import GpuReading

__all__ = ["CurveAccumulator", "DeviceCurve"]


@dataclass(frozen=True, slots=True)
class DeviceCurve:
    """A job's curve on one device; ``offset_s`` is each bin's start after the job's start."""

    index: int
    resolution_s: float
    offset_s: tuple[float, ...]
    power_w: tuple[float | None, ...]
    temperature_c: tuple[float | None, ...]
    fan_pct: tuple[float | None, ...]


class _Bin:
    __slots__ = ("fan_max", "n", "power_sum", "temp_max")

    def __init__(self) -> None:
        self.n = 0
        self.power_sum = 0.0
        self.temp_max = -math.inf
        self.fan_max = -math.inf

    def merge(self, other: _Bin) -> None:
        self.n += other.n
        self.power_sum += other.power_sum
        self.temp_max = max(self.temp_max, other.temp_max)
        self.fan_max = max(self.fan_max, other.fan_max)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class CurveAccumulator:
    """Builds one :class:`DeviceCurve` from readings (not thread-safe; the meter locks)."""

    def __init__(self, index: int, start_s: float, resolution_s: float, max_points: int) -> None:
        if resolution_s <= 0 or max_points < 2:
            raise ValueError(
                f"need resolution_s > 0 and max_points >= 2, got {resolution_s} and {max_points}"
            )
        self._index = index
        self._start_s = start_s
        self._resolution_s = resolution_s
        self._max_points = max_points
        self._bins: list[_Bin] = []

    def add(self, reading: GpuReading) -> None:
        """Add one reading (ignored if it precedes the start)."""
        offset_s = reading.monotonic_s - self._start_s
        if offset_s < 0:
            return
        k = int(offset_s // self._resolution_s)
        while k >= self._max_points:
            self._coarsen()
            k = int(offset_s // self._resolution_s)
        while len(self._bins) <= k:
            self._bins.append(_Bin())
        b = self._bins[k]
        if reading.power_w is not None:
            b.n += 1
            b.power_sum += reading.power_w
        if reading.temperature_c is not None:
            b.temp_max = max(b.temp_max, reading.temperature_c)
        if reading.fan_pct is not None:
            b.fan_max = max(b.fan_max, reading.fan_pct)

    def _coarsen(self) -> None:
        merged: list[_Bin] = []
        for k in range(0, len(self._bins), 2):
            b = self._bins[k]
            if k + 1 < len(self._bins):
                b.merge(self._bins[k + 1])
            merged.append(b)
        self._bins = merged
        self._resolution_s *= 2

    def freeze(self) -> DeviceCurve:
        """The curve so far, empty bins left out."""
        kept = [(k, b) for k, b in enumerate(self._bins) if b.n or math.isfinite(b.temp_max)]
        return DeviceCurve(
            index=self._index,
            resolution_s=self._resolution_s,
            offset_s=tuple(k * self._resolution_s for k, _ in kept),
            power_w=tuple(b.power_sum / b.n if b.n else None for _, b in kept),
            temperature_c=tuple(_finite(b.temp_max) for _, b in kept),
            fan_pct=tuple(_finite(b.fan_max) for _, b in kept),
        )
