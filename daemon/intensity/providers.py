"""Intensity providers the service plans with.

:class:`IntensityProvider` is what :class:`daemon.service.Service` needs: a refresh (the only
I/O), a forecast grid per zone and the current value. :class:`forecasts.SignalChain` (the
fallback chain) is one; two more need no network at all:

- :class:`StaticIntensity`: each zone's annual average (``forecasts.static_annual_intensity``),
  flat over the horizon.
- :class:`EmbeddedIntensity`: a small synthetic diurnal curve per zone around that average
  (the demo's default): ``mean * (1 + a * cos(2 pi (local_hour - peak_hour) / 24))``, so the
  daily mean stays the annual average. Lifecycle (LCA) average signal, labelled ``embedded``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from forecasts import static_annual_intensity
from policies import ZoneIntensity

__all__ = [
    "EmbeddedIntensity",
    "IntensityProvider",
    "IntensityReading",
    "Reading",
    "StaticIntensity",
    "ZoneSeries",
    "build_intensity",
]


@dataclass(frozen=True, slots=True)
class ZoneSeries:
    """Intensity of ``zone`` on a regular grid (a :class:`policies.ZoneIntensity`)."""

    zone: str
    start: datetime
    step_s: int
    values_g_per_kwh: npt.NDArray[np.float64]
    source: str = "static"
    upper_g_per_kwh: npt.NDArray[np.float64] | None = None


@dataclass(frozen=True, slots=True)
class IntensityReading:
    """The latest known intensity of a zone; ``age_s`` is how old it was at ``now``; ``rung``
    where it came from, as the fallback chain names its rungs (a fixed source: its name)."""

    zone: str
    at: datetime
    intensity_g_per_kwh: float
    source: str
    age_s: float = 0.0
    rung: str = "static"


class Reading(Protocol):
    """What the service reads from a current-intensity answer (:class:`IntensityReading`, or
    :class:`forecasts.IntensityReading` from the fallback chain)."""

    @property
    def zone(self) -> str: ...

    @property
    def at(self) -> datetime: ...

    @property
    def intensity_g_per_kwh(self) -> float: ...

    @property
    def source(self) -> str: ...

    @property
    def age_s(self) -> float: ...

    @property
    def rung(self) -> str: ...


class IntensityProvider(Protocol):
    """Where the service gets intensity: :class:`forecasts.SignalChain` in the daemon and
    replay, :class:`StaticIntensity` or :class:`EmbeddedIntensity` offline. Implementations
    take ``now`` and never read the clock.

    ``forecast`` and ``current`` raise a ``ForecastsError`` subclass (e.g. ``NoSignalError``,
    ``UnknownZoneError``) when no value exists; ``refresh`` does any network I/O and does not
    raise for a source that is down.
    """

    def refresh(self, zones: Iterable[str], now: datetime) -> object:
        """Fetch new data for ``zones`` (the only I/O)."""
        ...

    def forecast(self, zone: str, now: datetime, horizon_s: int, step_s: int) -> ZoneIntensity:
        """Intensity of ``zone`` from the slot containing ``now`` for ``horizon_s``."""
        ...

    def current(self, zone: str, now: datetime) -> Reading:
        """Intensity of ``zone`` at ``now``."""
        ...


def _slot_start(now: datetime, step_s: int) -> datetime:
    epoch = now.astimezone(UTC).timestamp()
    return datetime.fromtimestamp(epoch - epoch % step_s, UTC)


class StaticIntensity:
    """Each zone's static annual average, flat."""

    source: Final = "static"

    def refresh(self, zones: Iterable[str], now: datetime) -> None:
        """Nothing to fetch."""

    def forecast(self, zone: str, now: datetime, horizon_s: int, step_s: int) -> ZoneSeries:
        value = static_annual_intensity(zone)
        slots = max(1, math.ceil(horizon_s / step_s))
        return ZoneSeries(zone, _slot_start(now, step_s), step_s, np.full(slots, value),
                          self.source)  # fmt: skip

    def current(self, zone: str, now: datetime) -> IntensityReading:
        return IntensityReading(zone, now, static_annual_intensity(zone), self.source)


# zone -> (relative amplitude a, UTC offset of local time in hours, local hour of the peak)
_DIURNAL: Final = MappingProxyType(
    {
        "CA-QC": (0.10, -5.0, 18.0),  # hydro: small evening import peak
        "US-CAL-CISO": (0.35, -8.0, 1.0),  # solar: clean midday, dirty night
        "US-NW-PACE": (0.08, -7.0, 19.0),  # coal-heavy: almost flat
    }
)
_DEFAULT_SHAPE: Final = (0.20, 0.0, 19.0)


class EmbeddedIntensity:
    """A deterministic synthetic diurnal curve per zone around its annual average."""

    source: Final = "embedded"

    def value(self, zone: str, at: datetime) -> float:
        """Intensity of ``zone`` at ``at`` in gCO2e/kWh."""
        mean = static_annual_intensity(zone)
        amplitude, utc_offset_h, peak_h = _DIURNAL.get(zone, _DEFAULT_SHAPE)
        hour = (at.astimezone(UTC).timestamp() / 3600.0 + utc_offset_h) % 24.0
        return mean * (1.0 + amplitude * math.cos(2.0 * math.pi * (hour - peak_h) / 24.0))

    def refresh(self, zones: Iterable[str], now: datetime) -> None:
        """Nothing to fetch."""

    def forecast(self, zone: str, now: datetime, horizon_s: int, step_s: int) -> ZoneSeries:
        start = _slot_start(now, step_s)
        slots = max(1, math.ceil(horizon_s / step_s))
        values = np.array(
            [self.value(zone, start + timedelta(seconds=(i + 0.5) * step_s)) for i in range(slots)]
        )
        return ZoneSeries(zone, start, step_s, values, self.source)

    def current(self, zone: str, now: datetime) -> IntensityReading:
        return IntensityReading(zone, now, self.value(zone, now), self.source, rung=self.source)


def build_intensity(source: str) -> IntensityProvider:
    """The offline provider named ``static`` or ``embedded`` (the ``chain`` needs the settings:
    :func:`daemon.assemble_service.build_service` builds it).

    Raises:
        ValueError: an unknown source name.
    """
    if source == "static":
        return StaticIntensity()
    if source == "embedded":
        return EmbeddedIntensity()
    raise ValueError(f"no offline intensity source {source!r} (known: static, embedded)")
