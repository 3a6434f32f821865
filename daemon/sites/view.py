"""What planners see of the sites: per zone, the effective intensity of the next GPU kWh.

:class:`SiteView` keeps each site's battery state of charge between planning rounds (advanced
with the PV, the other load and the GPU load that was running) and turns the grid forecast of a
site's zone into :func:`policies.footprint.site.effective_intensity` on the same grid: grid
intensity blended with the PV that would be curtailed and the battery energy no running job
needs, shared over the GPUs free at each step. Running and free GPUs are counted at their TDP
times the site's PUE, so the surplus is never over-promised (realised shares are computed from
the jobs' own energy afterwards).

Only the planner's view changes: measured outcomes keep reading the grid series.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from daemon.sites.model import Site
from policies import Device, ZoneIntensity
from policies.footprint.site import dispatch, effective_intensity

__all__ = ["SiteIntensity", "SiteView"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SiteIntensity:
    """A zone forecast seen through its site (the planner's ``ZoneIntensity``)."""

    zone: str
    start: datetime
    step_s: int
    values_g_per_kwh: FloatArray
    upper_g_per_kwh: FloatArray | None = None
    source: str = "site"


def _busy_fraction(devices: Sequence[Device], start: datetime, step_s: int, n: int) -> FloatArray:
    """Per device and step, the fraction of the step it is still busy, shape ``(D, n)``."""
    edges = np.arange(n, dtype=np.float64) * step_s
    until = np.array(
        [((d.busy_until - start).total_seconds() if d.busy_until else -np.inf) for d in devices]
    )
    result: FloatArray = np.clip((until[:, None] - edges[None, :]) / step_s, 0.0, 1.0)
    return result


class SiteView:
    """Effective forecasts for the zones of regions with a site (see the module docstring)."""

    def __init__(self, sites: Mapping[str, Site]) -> None:
        self.sites = {region: site for region, site in sites.items() if site.plan}
        self._soc = {r: s.battery.initial_soc for r, s in self.sites.items() if s.battery}
        self._last: dict[str, tuple[datetime, float]] = {}  # region -> (when, GPU load W)

    def __bool__(self) -> bool:
        return bool(self.sites)

    def soc(self, region: str) -> float | None:
        """The battery's state of charge as last advanced (None: no battery)."""
        return self._soc.get(region)

    def forecasts(
        self, now: datetime, devices: Sequence[Device], forecasts: Mapping[str, ZoneIntensity]
    ) -> dict[str, ZoneIntensity]:
        """``forecasts`` with every site's zone replaced by its effective intensity."""
        out = dict(forecasts)
        for region, site in self.sites.items():
            mine = [d for d in devices if d.region == region and d.available]
            running_w = sum(
                d.gpu.tdp_w * d.pue for d in mine if d.busy_until and d.busy_until > now
            )
            self._advance(region, site, now, running_w)
            grid = forecasts.get(site.zone)
            if grid is None or not mine:
                continue
            out[site.zone] = self._effective(region, site, mine, grid, now)
        return out

    def _advance(self, region: str, site: Site, now: datetime, running_w: float) -> None:
        """Move the battery from the last round to ``now`` under the load seen then."""
        last = self._last.get(region)
        self._last[region] = (now, running_w)
        if site.battery is None or last is None or now <= last[0]:
            return
        span_s = (now - last[0]).total_seconds()
        pv = site.pv_w(last[0], span_s, 1)
        other = site.other_w(last[0], span_s, 1)
        flows = dispatch(pv, last[1], other, span_s, site.battery, self._soc[region])
        self._soc[region] = float(flows.soc[-1])

    def _effective(
        self,
        region: str,
        site: Site,
        devices: Sequence[Device],
        grid: ZoneIntensity,
        now: datetime,
    ) -> SiteIntensity:
        values = np.asarray(grid.values_g_per_kwh, dtype=np.float64)
        n, step = len(values), grid.step_s
        power = np.array([d.gpu.tdp_w * d.pue for d in devices])
        busy = _busy_fraction(devices, grid.start, step, n)
        committed = power @ busy
        free = power @ (1.0 - busy)
        pv = site.pv_forecast_w(now, grid.start, step, n)
        other = site.other_w(grid.start, step, n)
        soc = self._soc.get(region)

        def through_site(series: FloatArray) -> FloatArray:
            return effective_intensity(series, pv, other, committed, free, step, site.factors,
                                       site.battery, soc)  # fmt: skip

        upper = getattr(grid, "upper_g_per_kwh", None)
        return SiteIntensity(
            grid.zone, grid.start, step, through_site(values),
            None if upper is None else through_site(np.asarray(upper, dtype=np.float64)),
        )  # fmt: skip
