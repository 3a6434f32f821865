"""A finished job's outcome at a region with a site: its energy split by source, and grams
that charge only the grid part at the grid's intensity (pure).

The shares are :meth:`daemon.sites.SiteView.shares` over the job's run: the PV and battery
share of GPU energy the service's rounds saw (no meter on the PV or the battery; running GPUs
counted at TDP x PUE, so shares are conservative when GPUs draw less).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from policies.footprint.site import SiteFactors

__all__ = ["site_columns"]

J_PER_KWH: Final = 3_600_000


def site_columns(
    columns: Mapping[str, Any], pv_share: float, battery_share: float, factors: SiteFactors
) -> dict[str, Any]:
    """``columns`` (an ``outcomes`` row) with ``site_pv_j``, ``site_battery_j`` and
    ``site_grid_j`` (facility energy: ``energy_j`` x ``pue``) and, where the realised grid
    intensity is known, ``operational_g`` and ``total_g`` recomputed: grid energy at that
    intensity, PV and battery energy at ``factors``. Unchanged without an energy."""
    out = dict(columns)
    energy = out.get("energy_j")
    if energy is None:
        return out
    facility = float(energy) * float(out.get("pue") or 1.0)
    pv = facility * min(max(pv_share, 0.0), 1.0)
    battery = min(facility * max(battery_share, 0.0), facility - pv)
    grid = facility - pv - battery
    out |= {"site_pv_j": pv, "site_battery_j": battery, "site_grid_j": grid}
    intensity = out.get("realised_intensity_g_per_kwh")
    if intensity is None:
        return out
    operational = (
        grid * float(intensity) + pv * factors.pv_g_per_kwh + battery * factors.battery_g_per_kwh
    ) / J_PER_KWH
    out["operational_g"] = operational
    if out.get("embodied_g") is not None:
        out["total_g"] = operational + float(out["embodied_g"])
    return out
