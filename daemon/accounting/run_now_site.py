"""The run-now copy's realised intensity at a region with a site (pure).

A copy that is not the run itself (:func:`daemon.accounting.finished.is_the_run`) is re-priced
by the intensity realised over its own window over the intensity it was priced at. At a region
with a site the figure it was priced at is that of its facility kWh as the planner saw the site
(the grid forecast blended with the PV and battery energy it expected to be free; the grid
forecast alone where the site does not plan, ``plan = false``), so the realised figure must be
that of a facility kWh too: the grid energy at the realised grid intensity, the PV and battery
energy at the site's life-cycle factors, in the shares the site realised over the copy's window
(as a job running there then got them, :meth:`daemon.sites.SiteView.shares`). Until 2026-12-07
the realised grid intensity alone was divided by the site-blended one.

Where the site's rounds have not seen the copy's window whole (it runs past the last round
seen, e.g. past the job's end, or began before the site's first round after a start), what the
site would have covered is not known: the copy keeps the intensity it was priced at, as a copy
whose zone has no recorded sample does (docs/sites.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from policies.footprint.site import SiteFactors

__all__ = ["CopySite", "CopySites", "site_blended_g_per_kwh"]


@dataclass(frozen=True, slots=True)
class CopySite:
    """The site of a copy's region: its life-cycle ``factors`` and the PV and battery shares
    of GPU energy it realised over the copy's window (None: not seen whole)."""

    factors: SiteFactors
    shares: tuple[float, float] | None


class CopySites(Protocol):
    """The sites as the ending of a job sees them (:class:`daemon.endings.Endings`)."""

    def copy_site(self, region: str, start: datetime, end: datetime) -> CopySite | None:
        """The site of ``region`` over ``[start, end]`` (None: the region has no site)."""
        ...


def site_blended_g_per_kwh(grid_g_per_kwh: float, site: CopySite) -> float | None:
    """The intensity of a facility kWh at ``site``: ``grid_g_per_kwh`` for the share the site
    did not cover, its factors for the PV and battery shares (None: the shares are not
    known)."""
    if site.shares is None:
        return None
    pv = min(max(site.shares[0], 0.0), 1.0)
    battery = min(max(site.shares[1], 0.0), 1.0 - pv)
    return (
        (1.0 - pv - battery) * grid_g_per_kwh
        + pv * site.factors.pv_g_per_kwh
        + battery * site.factors.battery_g_per_kwh
    )
