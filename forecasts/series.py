"""The carbon-intensity time series: a zone's values on a fixed UTC step.

Each point ``k`` is the mean intensity over ``[start + k·step_s, start + (k+1)·step_s)`` in
gCO2e/kWh; NaN marks a missing point (a gap that was not filled). Means and integrals are exact
for this step function: the cumulative integral is piecewise linear, so any interval's mean is a
difference of two interpolated values, vectorised with NumPy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt

from forecasts.errors import KindMismatchError, OutOfRangeError, SeriesError

__all__ = [
    "J_PER_KWH",
    "MAX_INTENSITY_G_PER_KWH",
    "SIGNAL_KINDS",
    "FloatArray",
    "IntensitySeries",
    "SignalKind",
    "check_same_kind",
    "to_epoch_s",
]

J_PER_KWH: Final = 3_600_000
# Above any grid's: lignite plants emit ~1,200 g/kWh; a larger value is a broken answer or a typo.
MAX_INTENSITY_G_PER_KWH: Final = 10_000.0
SignalKind = Literal["lifecycle", "direct", "marginal"]
SIGNAL_KINDS: Final[tuple[str, ...]] = get_args(SignalKind)
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def to_epoch_s(t: datetime) -> float:
    """Seconds since the Unix epoch of an aware datetime.

    Raises:
        SeriesError: ``t`` is naive.
    """
    if t.tzinfo is None or t.utcoffset() is None:
        raise SeriesError(f"datetime {t.isoformat()} is naive; carbond needs aware UTC times")
    return t.timestamp()


def _from_epoch_s(s: float) -> datetime:
    return datetime.fromtimestamp(s, tz=UTC)


def _readonly(array: npt.ArrayLike, dtype: type) -> npt.NDArray[Any]:
    out: npt.NDArray[Any] = np.array(array, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class IntensitySeries:
    """Carbon intensity of one zone on a fixed step (immutable; arrays are read-only).

    Attributes:
        zone: the Electricity Maps zone key (``CA-QC``).
        start: aware UTC start of the first point.
        step_s: point length in seconds.
        values_g_per_kwh: mean intensity of each point, gCO2e/kWh; NaN = missing.
        is_estimated: per point, the provider estimated it or carbond filled a gap.
        kind: ``lifecycle`` or ``direct`` average, or ``marginal``; never mixed.
        source: where the values came from (``electricitymaps``, a file name, a forecaster).
        fetched_at: when the values were obtained (aware UTC), if known.
    """

    zone: str
    start: datetime
    step_s: int
    values_g_per_kwh: FloatArray
    is_estimated: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    kind: SignalKind = "lifecycle"
    source: str = ""
    fetched_at: datetime | None = None

    def __post_init__(self) -> None:
        to_epoch_s(self.start)
        if int(self.step_s) != self.step_s or self.step_s <= 0:
            raise SeriesError(f"{self.zone}: step_s must be a positive integer, got {self.step_s}")
        if self.kind not in SIGNAL_KINDS:
            raise SeriesError(f"{self.zone}: kind must be one of {SIGNAL_KINDS}, got {self.kind!r}")
        values = _readonly(self.values_g_per_kwh, np.float64)
        raw_flags: npt.ArrayLike = self.is_estimated
        if len(self.is_estimated) == 0 and len(values) > 0:
            raw_flags = np.zeros(len(values), dtype=np.bool_)
        flags = _readonly(raw_flags, np.bool_)
        if values.ndim != 1 or flags.shape != values.shape:
            raise SeriesError(
                f"{self.zone}: values and is_estimated must be 1-D of one length, "
                f"got {values.shape} and {flags.shape}"
            )
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "step_s", int(self.step_s))
        object.__setattr__(self, "values_g_per_kwh", values)
        object.__setattr__(self, "is_estimated", flags)
        if self.fetched_at is not None:
            to_epoch_s(self.fetched_at)
            object.__setattr__(self, "fetched_at", self.fetched_at.astimezone(UTC))

    # -- shape ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.values_g_per_kwh)

    @property
    def end(self) -> datetime:
        """Exclusive end: the end of the last point (== ``start`` when empty)."""
        return self.start + timedelta(seconds=self.step_s * len(self))

    @property
    def start_s(self) -> float:
        """``start`` in Unix seconds."""
        return self.start.timestamp()

    def times(self) -> list[datetime]:
        """The start time of every point (aware UTC)."""
        return [self.start + timedelta(seconds=self.step_s * k) for k in range(len(self))]

    def epoch_s(self) -> FloatArray:
        """The start time of every point in Unix seconds."""
        return self.start_s + self.step_s * np.arange(len(self), dtype=np.float64)

    def replace(self, **changes: Any) -> IntensitySeries:
        """A copy with some fields changed (validated again, like the constructor)."""
        return dataclasses.replace(self, **changes)

    # -- point access --------------------------------------------------------------------
    def index_of(self, t: datetime) -> int:
        """Index of the point whose interval contains ``t`` (may be outside ``[0, len)``)."""
        return math.floor((to_epoch_s(t) - self.start_s) / self.step_s)

    def at(self, t: datetime) -> float:
        """Intensity (gCO2e/kWh) of the point containing ``t``; NaN if that point is missing.

        Raises:
            OutOfRangeError: ``t`` is before ``start`` or at/after ``end``.
        """
        k = self.index_of(t)
        if not 0 <= k < len(self):
            raise OutOfRangeError(
                f"{self.zone}: {t.isoformat()} is outside the series "
                f"[{self.start.isoformat()}, {self.end.isoformat()})"
            )
        return float(self.values_g_per_kwh[k])

    def last_valid(self, before: datetime | None = None) -> tuple[datetime, float, bool] | None:
        """The last non-missing point starting before ``before`` (default: anywhere).

        Returns ``(point start, intensity_g_per_kwh, is_estimated)`` or None.
        """
        n = len(self) if before is None else max(0, min(len(self), self.index_of(before) + 1))
        finite = np.flatnonzero(np.isfinite(self.values_g_per_kwh[:n]))
        if finite.size == 0:
            return None
        k = int(finite[-1])
        when = self.start + timedelta(seconds=self.step_s * k)
        return when, float(self.values_g_per_kwh[k]), bool(self.is_estimated[k])

    def slice(self, start: datetime, end: datetime) -> IntensitySeries:
        """The points overlapping ``[start, end)``, clipped to the series (may be empty)."""
        first = max(0, self.index_of(start))
        last = min(len(self), math.ceil((to_epoch_s(end) - self.start_s) / self.step_s))
        last = max(first, last)
        return self.replace(
            start=self.start + timedelta(seconds=self.step_s * first),
            values_g_per_kwh=self.values_g_per_kwh[first:last],
            is_estimated=self.is_estimated[first:last],
        )

    def missing_count(self) -> int:
        """How many points are missing (NaN)."""
        return int(np.count_nonzero(~np.isfinite(self.values_g_per_kwh)))

    # -- time-weighted maths -------------------------------------------------------------
    def _cumulative(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        values = self.values_g_per_kwh
        missing = ~np.isfinite(values)
        grid = self.start_s + self.step_s * np.arange(len(self) + 1, dtype=np.float64)
        integral = np.concatenate(([0.0], np.cumsum(np.where(missing, 0.0, values) * self.step_s)))
        n_missing = np.concatenate(([0.0], np.cumsum(missing * float(self.step_s))))
        n_est = np.concatenate(([0.0], np.cumsum(self.is_estimated * float(self.step_s))))
        return grid, integral, n_missing, n_est

    def integrals_between(self, starts_s: FloatArray, ends_s: FloatArray) -> FloatArray:
        """Integral of intensity over each ``[starts_s[i], ends_s[i])``, in gCO2e/kWh·s.

        Partial points count for the fraction of them inside the interval. An interval that
        touches a missing point gives NaN.

        Raises:
            OutOfRangeError: an interval reaches outside ``[start, end]``.
            SeriesError: an interval ends before it starts.
        """
        starts = np.asarray(starts_s, dtype=np.float64)
        ends = np.asarray(ends_s, dtype=np.float64)
        if np.any(ends < starts):
            raise SeriesError(f"{self.zone}: an interval ends before it starts")
        lo, hi = self.start_s, self.end.timestamp()
        if starts.size and (starts.min() < lo or ends.max() > hi):
            raise OutOfRangeError(
                f"{self.zone}: interval outside the series "
                f"[{self.start.isoformat()}, {self.end.isoformat()}]"
            )
        grid, integral, n_missing, _ = self._cumulative()
        total = np.interp(ends, grid, integral) - np.interp(starts, grid, integral)
        gaps = np.interp(ends, grid, n_missing) - np.interp(starts, grid, n_missing)
        return np.where(gaps > 1e-9, np.nan, total)

    def integral_between(self, start: datetime, end: datetime) -> float:
        """Integral of intensity over ``[start, end)`` in gCO2e/kWh·s (see integrals_between)."""
        out = self.integrals_between(np.array([to_epoch_s(start)]), np.array([to_epoch_s(end)]))
        return float(out[0])

    def means_between(self, starts_s: FloatArray, ends_s: FloatArray) -> FloatArray:
        """Time-weighted mean intensity (gCO2e/kWh) over each interval; vectorised.

        Raises:
            OutOfRangeError, SeriesError: as :meth:`integrals_between`; also for empty intervals.
        """
        starts = np.asarray(starts_s, dtype=np.float64)
        ends = np.asarray(ends_s, dtype=np.float64)
        if np.any(ends <= starts):
            raise SeriesError(f"{self.zone}: a mean needs intervals with end > start")
        return self.integrals_between(starts, ends) / (ends - starts)

    def mean_between(self, start: datetime, end: datetime) -> float:
        """Time-weighted mean intensity over ``[start, end)``, partial points weighted.

        Raises:
            OutOfRangeError: the interval is not inside the series.
            SeriesError: ``end <= start``.
        """
        out = self.means_between(np.array([to_epoch_s(start)]), np.array([to_epoch_s(end)]))
        return float(out[0])

    def emissions_g(self, energy_j: float, start: datetime, end: datetime) -> float:
        """Grams CO2e of ``energy_j`` joules drawn evenly over ``[start, end)``.

        Raises:
            OutOfRangeError, SeriesError: as :meth:`mean_between`.
        """
        return energy_j / J_PER_KWH * self.mean_between(start, end)

    def resample(self, step_s: int) -> IntensitySeries:
        """The series on a new step from the same start, by time-weighted means.

        A point that overlaps a missing one is missing; it is estimated if any part of it was.
        A coarser last point covers only what the series has.
        """
        if int(step_s) != step_s or step_s <= 0:
            raise SeriesError(f"{self.zone}: step_s must be a positive integer, got {step_s}")
        if step_s == self.step_s or len(self) == 0:
            return self.replace(step_s=step_s) if len(self) == 0 else self
        duration = self.step_s * len(self)
        n = math.ceil(duration / step_s)
        starts = self.start_s + step_s * np.arange(n, dtype=np.float64)
        ends = np.minimum(starts + step_s, self.start_s + duration)
        grid, _, _, n_est = self._cumulative()
        est = (np.interp(ends, grid, n_est) - np.interp(starts, grid, n_est)) > 1e-9
        return self.replace(
            step_s=step_s, values_g_per_kwh=self.means_between(starts, ends), is_estimated=est
        )

    # -- combining -----------------------------------------------------------------------
    def merge(self, newer: IntensitySeries) -> IntensitySeries:
        """Union of two series of one zone, kind and step; ``newer``'s finite points win.

        Points between the two that neither covers are missing (NaN).

        Raises:
            KindMismatchError: different kinds.
            SeriesError: different zones, steps, or grids that do not align.
        """
        check_same_kind(self, newer)
        if newer.zone != self.zone or newer.step_s != self.step_s:
            raise SeriesError(
                f"cannot merge {newer.zone}/{newer.step_s}s into {self.zone}/{self.step_s}s"
            )
        if len(self) == 0:
            return newer
        if len(newer) == 0:
            return self
        offset = (newer.start_s - self.start_s) / self.step_s
        if offset != round(offset):
            raise SeriesError(f"{self.zone}: grids starting {self.start} and {newer.start} differ")
        first = min(0, round(offset))
        last = max(len(self), round(offset) + len(newer))
        values = np.full(last - first, np.nan)
        flags = np.zeros(last - first, dtype=np.bool_)
        a = -first
        values[a : a + len(self)] = self.values_g_per_kwh
        flags[a : a + len(self)] = self.is_estimated
        b = round(offset) - first
        fresh = np.isfinite(newer.values_g_per_kwh)
        values[b : b + len(newer)][fresh] = newer.values_g_per_kwh[fresh]
        flags[b : b + len(newer)][fresh] = newer.is_estimated[fresh]
        return self.replace(
            start=self.start + timedelta(seconds=self.step_s * first),
            values_g_per_kwh=values,
            is_estimated=flags,
            source=newer.source or self.source,
            fetched_at=newer.fetched_at or self.fetched_at,
        )

    @classmethod
    def from_points(
        cls,
        zone: str,
        times: Sequence[datetime],
        values_g_per_kwh: Sequence[float],
        is_estimated: Sequence[bool] | None = None,
        *,
        step_s: int,
        kind: SignalKind = "lifecycle",
        source: str = "",
        fetched_at: datetime | None = None,
    ) -> IntensitySeries:
        """Place timestamped points on a grid of ``step_s`` starting at the earliest time.

        Times are floored to the grid; the last of several points in one slot wins; slots
        without a point are missing (NaN).

        Raises:
            SeriesError: no points, naive times, or lengths that differ.
        """
        if not times:
            raise SeriesError(f"{zone}: no points")
        if len(values_g_per_kwh) != len(times) or (
            is_estimated is not None and len(is_estimated) != len(times)
        ):
            raise SeriesError(f"{zone}: times, values and flags differ in length")
        secs = np.array([to_epoch_s(t) for t in times])
        origin = math.floor(secs.min() / step_s) * step_s
        slots = np.floor((secs - origin) / step_s).astype(np.int64)
        values = np.full(int(slots.max()) + 1, np.nan)
        flags = np.zeros(len(values), dtype=np.bool_)
        values[slots] = np.asarray(values_g_per_kwh, dtype=np.float64)
        if is_estimated is not None:
            flags[slots] = np.asarray(is_estimated, dtype=np.bool_)
        return cls(zone, _from_epoch_s(origin), step_s, values, flags, kind, source, fetched_at)


def check_same_kind(*series: IntensitySeries) -> SignalKind:
    """Return the common kind of ``series``.

    Raises:
        KindMismatchError: two kinds differ (e.g. lifecycle average and marginal).
    """
    kinds = {s.kind for s in series}
    if len(kinds) > 1:
        names = ", ".join(f"{s.zone}:{s.kind}" for s in series)
        raise KindMismatchError(f"signals of different kinds cannot be combined: {names}")
    return series[0].kind if series else "lifecycle"
