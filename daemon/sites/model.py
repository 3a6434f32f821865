"""A region's site, built from its ``[regions.site]`` settings: PV and other-load power on any
grid, the battery and the life-cycle factors of on-site energy.

Modelled PV (pvlib clear sky) is computed lazily, a few days at a time on a 5-minute grid, and
kept: planning asks for it every tick, accounting once per replay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from daemon.errors import UsageError
from daemon.settings import RegionSettings, SiteSettings
from forecasts import ForecastsError
from forecasts.solar import PowerSeries, PvArray, clear_sky_pv, load_power_csv
from policies.footprint.site import Battery, SiteFactors

__all__ = ["Site", "SiteConfigError", "build_site", "build_sites"]

FloatArray = npt.NDArray[np.float64]

_MODEL_STEP_S = 300
_MODEL_SPAN = timedelta(days=4)
_DAY_S = 86_400.0


class SiteConfigError(UsageError):
    """A site that cannot be built (unreadable CSV, a zone shared with another region)."""


@dataclass(slots=True)
class Site:
    """One region's on-site energy (see the module docstring)."""

    region: str
    zone: str
    pv_array: PvArray | None
    pv_trace: PowerSeries | None
    other_load_w: float
    other_trace: PowerSeries | None
    battery: Battery | None
    factors: SiteFactors
    plan: bool = True  # planners see the site (False: accounting only)
    _modelled: PowerSeries | None = field(default=None, repr=False)

    def pv_w(self, start: datetime, step_s: float, count: int) -> FloatArray:
        """Mean PV power (W) over each of ``count`` steps of ``step_s`` from ``start``."""
        if self.pv_trace is not None:
            return self.pv_trace.on_grid(start, step_s, count)
        if self.pv_array is None or self.pv_array.peak_kw == 0:
            return np.zeros(count)
        end = start + timedelta(seconds=step_s * count)
        cached = self._modelled
        if cached is None or start < cached.start or end > _end(cached):
            first = start.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
            span = max(_MODEL_SPAN, end - first + timedelta(hours=1))
            count_model = int(span.total_seconds() // _MODEL_STEP_S)
            cached = clear_sky_pv(self.pv_array, first, _MODEL_STEP_S, count_model)
            self._modelled = cached
        return cached.on_grid(start, step_s, count)

    def pv_forecast_w(
        self, now: datetime, start: datetime, step_s: float, count: int
    ) -> FloatArray:
        """PV as planners may know it at ``now``: the model (clear sky is its own forecast),
        or for a measured trace the measurement before ``now`` and, after it, the same time of
        the latest day measured by then (seasonal persistence: a step 30 h ahead sees two days
        before, never measured future generation)."""
        if self.pv_trace is None:
            return self.pv_w(start, step_s, count)
        return _persisted(self.pv_w, now, start, step_s, count)

    def other_w(self, start: datetime, step_s: float, count: int) -> FloatArray:
        """Mean power (W) of the site's other load over each step."""
        if self.other_trace is not None:
            return self.other_trace.on_grid(start, step_s, count)
        return np.full(count, self.other_load_w)

    def other_forecast_w(
        self, now: datetime, start: datetime, step_s: float, count: int
    ) -> FloatArray:
        """The other load as planners may know it at ``now``: a constant, or a measured trace
        forecast as measured PV is (:meth:`pv_forecast_w`)."""
        if self.other_trace is None:
            return self.other_w(start, step_s, count)
        return _persisted(self.other_w, now, start, step_s, count)


def _persisted(
    measured: Callable[[datetime, float, int], FloatArray],
    now: datetime,
    start: datetime,
    step_s: float,
    count: int,
) -> FloatArray:
    """``measured`` on the grid where it is known by ``now``, and after ``now`` the same time
    of the latest day measured by then (seasonal persistence, no peeking at the future)."""
    ends = (start - now).total_seconds() + (np.arange(count) + 1.0) * step_s
    days_back = np.ceil(np.maximum(ends, 0.0) / _DAY_S)  # 0: measured by ``now``
    result: FloatArray = measured(start, step_s, count)
    for days in np.unique(days_back[days_back > 0]):
        earlier = measured(start - timedelta(days=float(days)), step_s, count)
        result = np.where(days_back == days, earlier, result)
    return result


def _end(series: PowerSeries) -> datetime:
    return series.start + timedelta(seconds=series.step_s * len(series.values_w))


def build_site(region: str, zone: str, cfg: SiteSettings) -> Site:
    """The site of ``region`` (in ``zone``) from its settings.

    Raises:
        SiteConfigError: a measured CSV cannot be read (the message names region and file).
    """
    pv_array = None
    if cfg.pv_kwp > 0 and cfg.latitude is not None and cfg.longitude is not None:
        pv_array = PvArray(cfg.pv_kwp, cfg.latitude, cfg.longitude, cfg.tilt_deg,
                           cfg.azimuth_deg, cfg.losses)  # fmt: skip
    battery = None
    if cfg.battery is not None:
        b = cfg.battery
        battery = Battery(b.capacity_kwh, b.charge_power_w, b.discharge_power_w,
                          b.round_trip_efficiency, b.min_soc, b.initial_soc)  # fmt: skip
    try:
        pv_trace = load_power_csv(Path(cfg.pv_csv)) if cfg.pv_csv is not None else None
        other = load_power_csv(Path(cfg.other_load_csv)) if cfg.other_load_csv else None
    except ForecastsError as exc:
        raise SiteConfigError(f"regions.{region}.site: {exc}") from exc
    factors = SiteFactors(cfg.pv_g_per_kwh, cfg.battery_g_per_kwh)
    return Site(region, zone, pv_array, pv_trace, cfg.other_load_w, other,
                battery, factors, cfg.plan)  # fmt: skip


def build_sites(regions: Iterable[RegionSettings]) -> Mapping[str, Site]:
    """The site of every region that has one, by region name.

    Raises:
        SiteConfigError: a CSV cannot be read, or a region with a site shares its zone with
            another region (planners see intensity per zone, so a site needs its zone alone).
    """
    regions = tuple(regions)
    sites = {r.name: build_site(r.name, r.zone, r.site) for r in regions if r.site is not None}
    for name, site in sites.items():
        others = [r.name for r in regions if r.zone == site.zone and r.name != name]
        if others:
            raise SiteConfigError(
                f"regions.{name}.site: zone {site.zone} is shared with {', '.join(others)}; "
                "a region with a site needs a zone of its own"
            )
    return sites
