"""Intensity for replay: realised series for accounting, forecasts from the past for planning.

Stand-in until the signals work (``forecasts.read_trace``, ``HistoricalForecasts``) is on
``main``: a reader for hourly Electricity Maps portal CSVs and a seasonal forecaster that uses
only points before the issue time. Both sit behind :class:`ReplaySignals`, the one object the
replay driver asks, so swapping in the ``forecasts`` package changes this module only.

The forecast for lead ``h`` hours issued at hour ``i`` is yesterday's value at that hour plus
the current deviation from yesterday, decaying with the lead (``0.85 ** h``); its pessimistic
bound adds the mean absolute 24-hour change of the past week, growing with ``sqrt(h / 24)``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from daemon.replay.errors import ReplayInputError

__all__ = ["ReplaySignals", "ZoneSeries", "read_intensity"]

FloatArray = npt.NDArray[np.float64]
_TIME: Final = ("Datetime (UTC)", "datetime_utc", "datetime")
_ZONE: Final = ("Zone Id", "zone")
_VALUE: Final = (
    "Carbon Intensity gCO₂eq/kWh (LCA)",
    "carbon_intensity_gco2_per_kwh",
    "carbon_intensity_g_per_kwh",
)
_DAY_H: Final = 24


@dataclass(frozen=True, slots=True)
class ZoneSeries:
    """Intensity of one zone on a regular grid: a :class:`policies.ZoneIntensity`."""

    zone: str
    start: datetime
    step_s: int
    values_g_per_kwh: FloatArray
    upper_g_per_kwh: FloatArray | None = None

    @property
    def end(self) -> datetime:
        """End of the last point."""
        return self.start + timedelta(seconds=self.step_s * len(self.values_g_per_kwh))


def _column(header: list[str], names: tuple[str, ...], path: Path) -> int:
    for name in names:
        if name in header:
            return header.index(name)
    raise ReplayInputError(f"{path}:1: no column {names[0]!r} (has: {', '.join(header)})")


def _parse_time(text: str, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ReplayInputError(f"{where}: not a time: {text!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_intensity(path: Path) -> dict[str, ZoneSeries]:
    """Hourly series per zone from an Electricity Maps CSV (LCA column); gaps are filled
    with the previous value.

    Raises:
        ReplayInputError: unreadable file, missing column, bad time or value (file:line).
    """
    rows: dict[str, dict[datetime, float]] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            it, iz, iv = (_column(header, names, path) for names in (_TIME, _ZONE, _VALUE))
            for line, row in enumerate(reader, start=2):
                where = f"{path}:{line}"
                if not row:
                    continue
                text = row[iv].strip() if iv < len(row) else ""
                if not text:
                    continue
                try:
                    value = float(text)
                except ValueError:
                    raise ReplayInputError(f"{where}: not a number: {text!r}") from None
                rows.setdefault(row[iz], {})[_parse_time(row[it], where)] = value
    except OSError as exc:
        raise ReplayInputError(f"{path}: cannot read ({exc.strerror})") from exc
    if not rows:
        raise ReplayInputError(f"{path}: no intensity rows")
    result = {}
    for zone, points in rows.items():
        times = sorted(points)
        start, hours = times[0], int((times[-1] - times[0]).total_seconds() // 3600) + 1
        values = np.full(hours, np.nan)
        for t in times:
            values[int((t - start).total_seconds() // 3600)] = points[t]
        for i in range(1, hours):  # forward fill gaps
            if not math.isfinite(values[i]):
                values[i] = values[i - 1]
        result[zone] = ZoneSeries(zone, start, 3600, values)
    return result


class ReplaySignals:
    """Realised intensity per zone, and the forecasts a planner could have had at any time.

    Raises (constructor):
        ReplayInputError: a zone the cluster needs is in none of the files.
    """

    def __init__(self, series: Sequence[dict[str, ZoneSeries]], zones: Sequence[str]) -> None:
        merged: dict[str, ZoneSeries] = {}
        for found in series:
            merged.update(found)
        missing = [z for z in zones if z not in merged]
        if missing:
            raise ReplayInputError(
                f"no intensity for zone(s) {', '.join(missing)} in --intensity files "
                f"(found: {', '.join(sorted(merged)) or 'none'})"
            )
        self.actuals = {z: merged[z] for z in zones}
        self._memo: dict[tuple[str, int, int], ZoneSeries] = {}

    def covers(self, start: datetime, end: datetime) -> None:
        """Raises ReplayInputError if a zone's actuals do not cover ``[start - 1 day, end]``."""
        for zone, s in self.actuals.items():
            if s.start > start - timedelta(days=1) or s.end < end:
                raise ReplayInputError(
                    f"intensity for {zone} covers {s.start:%Y-%m-%d %H:%M} to "
                    f"{s.end:%Y-%m-%d %H:%M}; the replay needs a day before {start:%Y-%m-%d} "
                    f"to {end:%Y-%m-%d %H:%M}"
                )

    def actual(self, zone: str) -> ZoneSeries:
        """The realised series of ``zone``."""
        return self.actuals[zone]

    def forecast(self, zone: str, now: datetime, horizon_s: int) -> ZoneSeries:
        """The forecast issued at the last full hour before ``now``, from that hour on."""
        series = self.actuals[zone]
        issue = int((now - series.start).total_seconds() // series.step_s)
        leads = max(1, math.ceil(horizon_s / series.step_s) + 1)
        key = (zone, issue, leads)
        if key not in self._memo:
            self._memo[key] = self._compute(series, issue, leads)
        return self._memo[key]

    @staticmethod
    def _compute(series: ZoneSeries, issue: int, leads: int) -> ZoneSeries:
        y = series.values_g_per_kwh
        past = y[max(0, issue - 8 * _DAY_H) : issue]  # only points that ended before the issue
        if len(past) == 0:
            raise ReplayInputError(f"{series.zone}: no intensity before the replay start")
        h = np.arange(leads)
        if len(past) > _DAY_H:
            yesterday = past[len(past) - _DAY_H + (h % _DAY_H)]
            deviation = past[-1] - past[-1 - _DAY_H]
            point = yesterday + deviation * 0.85 ** (h + 1)
            spread = float(np.mean(np.abs(past[_DAY_H:] - past[:-_DAY_H])))
        else:
            point = np.full(leads, past[-1])
            spread = float(np.std(past))
        upper = point + spread * np.sqrt((h + 1) / _DAY_H)
        start = series.start + timedelta(seconds=series.step_s * issue)
        return ZoneSeries(series.zone, start, series.step_s, np.maximum(point, 0.0), upper)
