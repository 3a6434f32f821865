"""What the planner's kept rows depend on besides their own jobs (:mod:`policies.incremental`).

The pools (GPU types, regions, PUE, which devices are available), the grid's slot length and
count, the planning parameters, the recalibration factors in use and the forecasts of the
pools' zones. :class:`KeptContext` remembers them from the last tick and says, each tick,
whether the rows still hold, follow the grid by some slots, or must all be scored again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from policies.footprint.gpus import GpuSpec
from policies.footprint.recalibration import Key, Recalibration
from policies.planner import WindowParameters
from policies.scoring import Pool, SlotGrid, upper_values
from policies.types import ZoneIntensity

__all__ = ["KeptContext"]

FloatArray = npt.NDArray[np.float64]

_Factors = tuple[tuple[Key, float, float], ...]


@dataclass(frozen=True, slots=True)
class _Context:
    """What every stored row depends on besides its own job and the forecasts."""

    pools: tuple[tuple[str, str, GpuSpec, float, tuple[tuple[str, bool], ...]], ...]
    grid: tuple[int, int]  # slot length and count (the anchor moves: see KeptContext.refresh)
    params: WindowParameters
    factors: _Factors  # the recalibration factors in use


def _in_use(recalibration: Recalibration | None) -> _Factors:
    """The factors that change estimates (``Recalibration.apply`` uses only these): a new
    observation of a key whose factors are not yet in use changes no row."""
    if recalibration is None:
        return ()
    return tuple(sorted(
        (key, factor.energy_factor, factor.duration_factor)
        for key, factor in recalibration.factors.items()
        if recalibration.in_use(*key)
    ))  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the rows read from one zone's forecast: its values and pessimistic bound as the
    scorer reads them (float64), kept as bytes. Forecasts compare the same when those bytes
    are equal: the scorer's arithmetic then sees the very same operands."""

    start: datetime
    step_s: int
    values: bytes
    upper: bytes | None

    @classmethod
    def of(cls, forecast: ZoneIntensity) -> _Seen:
        upper = upper_values(forecast)
        return cls(forecast.start, forecast.step_s, _bytes(forecast.values_g_per_kwh),
                   None if upper is None else upper.tobytes())  # fmt: skip

    def same(self, forecast: ZoneIntensity) -> bool:
        if self.start != forecast.start or self.step_s != forecast.step_s:
            return False
        if self.values != _bytes(forecast.values_g_per_kwh):
            return False
        upper = upper_values(forecast)
        return self.upper == (None if upper is None else upper.tobytes())


def _bytes(values: npt.ArrayLike) -> bytes:
    """``values`` as float64, C order, as bytes (the length tells the shape of a 1-D series)."""
    return np.ascontiguousarray(values, dtype=np.float64).tobytes()


class KeptContext:
    """The dependencies the kept rows were scored under, and where the grid was anchored."""

    def __init__(self) -> None:
        self._context: _Context | None = None
        self._start = datetime.min.replace(tzinfo=UTC)  # the grid's anchor at the last tick
        self._forecasts: dict[str, _Seen] = {}

    def refresh(
        self, pools: Sequence[Pool], grid: SlotGrid, forecasts: Mapping[str, ZoneIntensity],
        params: WindowParameters, recalibration: Recalibration | None,
    ) -> int | None:  # fmt: skip
        """The number of slots the grid moved on since the last tick (0: none) when the
        rows can follow it; None when anything they depend on changed (every row must be
        scored again: this tick's dependencies are remembered from now on)."""
        context = _Context(
            tuple((p.region, p.zone, p.gpu, p.pue,
                   tuple((d.device_id, d.available) for d in p.devices)) for p in pools),
            (grid.step_s, grid.count), params, _in_use(recalibration),
        )  # fmt: skip
        zones = {p.zone: forecasts.get(p.zone) for p in pools}
        same = context == self._context and all(
            f is not None and z in self._forecasts and self._forecasts[z].same(f)
            for z, f in zones.items()
        )
        moved_s = (grid.start - self._start).total_seconds() if same else -1.0
        if moved_s == 0:
            return 0
        slots = int(moved_s // grid.step_s)
        # Stored cells are kept by slot index; shifted, they equal freshly scored ones when
        # every start offset the scorer computes is a whole number of seconds (exact in floats).
        whole = all(
            f is not None and (f.start - grid.start).total_seconds().is_integer()
            for f in zones.values()
        )
        self._start = grid.start
        if same and whole and 0 < slots < grid.count and slots * grid.step_s == moved_s:
            return slots
        self._context = context
        self._forecasts = {z: _Seen.of(f) for z, f in zones.items() if f is not None}
        return None
