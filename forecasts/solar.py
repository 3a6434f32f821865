"""On-site power signals: PV generation (pvlib's models, or a measured CSV) and site loads.

A :class:`PowerSeries` is a regular series of mean power (W) per step, like
:class:`~forecasts.series.IntensitySeries` is for intensity; :meth:`PowerSeries.on_grid` gives
its time-weighted means on any other grid (the nearest value holds outside it).

:func:`clear_sky_pv` models a PV array with pvlib (imported lazily: it is only needed where a
site has panels): the sun's position (``solarposition``), clear-sky irradiance (Ineichen with
the Linke turbidity climatology bundled with pvlib), transposition to the tilted plane
(``get_total_irradiance``, isotropic sky), cell temperature (SAPM, open-rack glass/glass at
20 °C air and 1 m/s wind) and PVWatts DC power (−0.37 %/K), times ``1 - losses`` (wiring,
soiling, inverter, ...). Clear sky is an upper bound: real days have clouds. A measured
generation CSV (:func:`load_power_csv`) replaces it where the operator has one.

CSV format (header required)::

    datetime,power_w
    2023-06-05T00:00:00Z,0.0
    2023-06-05T00:15:00Z,12.5

Rows are equally spaced, in order, aware or UTC; the power is the mean over the row's step.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import stat
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from forecasts.errors import SolarInputError

__all__ = [
    "MAX_POWER_W",
    "PowerSeries",
    "PvArray",
    "clear_sky_pv",
    "load_power_csv",
]

FloatArray = npt.NDArray[np.float64]

# The most power a CSV row may hold, W: 10 GW, past the largest PV parks. A value beyond any
# site is a typo, and running sums over it lose every later row (1e300 W hides a 500 W row).
MAX_POWER_W = 1e10


@dataclass(frozen=True, slots=True)
class PowerSeries:
    """Mean power (W) of each ``step_s`` step from ``start`` (aware UTC)."""

    start: datetime
    step_s: int
    values_w: FloatArray
    source: str = ""

    def on_grid(self, start: datetime, step_s: float, count: int) -> FloatArray:
        """Time-weighted mean power over each of ``count`` steps of ``step_s`` from ``start``."""
        values = np.asarray(self.values_w, dtype=np.float64)
        n = len(values)
        cum = np.concatenate(([0.0], np.cumsum(values)))
        offset = (start - self.start).total_seconds() / self.step_s
        edges = offset + np.arange(count + 1) * (step_s / self.step_s)
        clipped = np.clip(edges, 0.0, float(n))
        k = np.minimum(clipped.astype(np.int64), n - 1)
        integral = cum[k] + (clipped - k) * values[k]
        integral += np.minimum(edges, 0.0) * values[0] + np.maximum(edges - n, 0.0) * values[-1]
        result: FloatArray = np.diff(integral) * (self.step_s / step_s)
        return result


@dataclass(frozen=True, slots=True)
class PvArray:
    """A PV array: peak DC power (kWp), where it is and how it faces.

    ``azimuth_deg``: 180 faces south (pvlib's convention: clockwise from north);
    ``losses``: fraction lost between the panels' DC and the site (0.14 is PVWatts' default).
    """

    peak_kw: float
    latitude: float
    longitude: float
    tilt_deg: float = 20.0
    azimuth_deg: float = 180.0
    losses: float = 0.14
    altitude_m: float = 0.0

    def __post_init__(self) -> None:
        checks = (
            ("peak_kw", self.peak_kw >= 0),
            ("latitude", -90 <= self.latitude <= 90),
            ("longitude", -180 <= self.longitude <= 180),
            ("tilt_deg", 0 <= self.tilt_deg <= 90),
            ("azimuth_deg", 0 <= self.azimuth_deg <= 360),
            ("losses", 0 <= self.losses < 1),
        )
        for name, ok in checks:
            if not ok or not math.isfinite(getattr(self, name)):
                raise SolarInputError(
                    f"pv.{name} out of range: {getattr(self, name)!r}", field=f"pv.{name}"
                )


def clear_sky_pv(array: PvArray, start: datetime, step_s: int, count: int) -> PowerSeries:
    """Clear-sky AC power of ``array`` at the middle of each of ``count`` steps (W)."""
    import pandas as pd
    import pvlib

    with warnings.catch_warnings():  # pvlib still calls pandas APIs pandas 3 deprecates
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        power = _clear_sky_w(pd, pvlib, array, start, step_s, count)
    return PowerSeries(start.astimezone(UTC), int(step_s), power, "pvlib-clearsky")


def _clear_sky_w(
    pd: Any, pvlib: Any, array: PvArray, start: datetime, step_s: int, count: int
) -> FloatArray:
    times = pd.DatetimeIndex(
        [start + timedelta(seconds=(k + 0.5) * step_s) for k in range(count)]
    ).tz_convert("UTC")
    site = pvlib.location.Location(array.latitude, array.longitude, "UTC", array.altitude_m)
    sun = site.get_solarposition(times)
    sky = site.get_clearsky(times, solar_position=sun)
    poa = pvlib.irradiance.get_total_irradiance(
        array.tilt_deg, array.azimuth_deg, sun["apparent_zenith"], sun["azimuth"],
        sky["dni"], sky["ghi"], sky["dhi"],
    )["poa_global"].fillna(0.0)  # fmt: skip
    params = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_glass"]
    cell = pvlib.temperature.sapm_cell(poa, 20.0, 1.0, **params)
    dc = pvlib.pvsystem.pvwatts_dc(poa, cell, array.peak_kw * 1000.0, -0.0037)
    power: FloatArray = np.clip(np.asarray(dc, dtype=np.float64) * (1.0 - array.losses), 0.0, None)
    return power


def _parse_time(text: str, path: Path, line: int) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise SolarInputError(
            f"datetime: not ISO 8601: {text!r}", file=path, line=line, field="datetime"
        ) from exc
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+14:00 is in year 0 in UTC
        raise SolarInputError(
            f"datetime: out of range in UTC: {text!r}", file=path, line=line, field="datetime"
        ) from exc


def _open_regular(path: Path) -> TextIO:
    """``path`` as UTF-8 text for ``csv``, opened without blocking: a FIFO would wait for a
    writer forever (the daemon's loop with it).

    Raises:
        OSError: it cannot be opened or is not a regular file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO, a directory, a device
            raise OSError("not a regular file")
        return os.fdopen(fd, encoding="utf-8-sig", newline="")
    except BaseException:
        os.close(fd)
        raise


def load_power_csv(path: Path) -> PowerSeries:
    """Read a ``datetime,power_w`` CSV of equally spaced rows.

    Raises:
        SolarInputError: unreadable file, missing column, bad value (a power must be from 0
            to :data:`MAX_POWER_W`) or uneven spacing (the message names the file, line and
            field).
    """
    try:  # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name
        with _open_regular(path) as handle:
            reader = csv.DictReader(handle)  # skips blank lines: each row keeps its own line
            rows = [(reader.line_num, row) for row in reader]
    except OSError as exc:
        raise SolarInputError(f"cannot read ({exc.strerror or exc})", file=path) from exc
    except (UnicodeDecodeError, csv.Error) as exc:  # text is decoded in blocks: no line
        raise SolarInputError(f"not a UTF-8 CSV file ({exc})", file=path) from exc
    if len(rows) < 2 or not {"datetime", "power_w"} <= set(rows[0][1]):
        raise SolarInputError("need a 'datetime,power_w' header and at least 2 rows", file=path)
    times, values = [], []
    for line, row in rows:
        times.append(_parse_time(row["datetime"] or "", path, line))
        try:
            value = float(row["power_w"] or "")
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and 0 <= value <= MAX_POWER_W):
            raise SolarInputError(
                f"power_w: not a number from 0 to {MAX_POWER_W:,.0f} W: {row['power_w']!r}",
                file=path,
                line=line,
                field="power_w",
            )
        values.append(value)
    step = (times[1] - times[0]).total_seconds()
    for (line, _), (a, b) in zip(rows[1:], itertools.pairwise(times), strict=True):
        at = partial(SolarInputError, file=path, line=line, field="datetime")
        said = f"datetime: {b.isoformat()}"
        if b <= a:
            order = "repeats the row above" if b == a else "is before the row above"
            raise at(f"{said} {order} (rows must be in time order, once each)")
        if (b - a).total_seconds() != step:
            raise at(
                f"{said} is {(b - a).total_seconds():g} s after the row above; "
                f"rows must be equally spaced ({step:g} s)"
            )
        if step != int(step):
            raise at(f"{said}: rows must be a whole number of seconds apart")
    try:  # the series ends a step after its last row: users of it take that end
        times[-1] + timedelta(seconds=step)
    except OverflowError:
        raise SolarInputError(
            f"datetime: {times[-1].isoformat()}: its step of {step:g} s ends past the year 9999",
            file=path,
            line=rows[-1][0],
            field="datetime",
        ) from None
    return PowerSeries(times[0], int(step), np.array(values), path.name)
