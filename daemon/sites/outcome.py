"""A finished job's outcome at a region with a site: its energy split by source, and grams
that charge only the grid part at the grid's intensity (pure); and the sites as a job's ending
re-prices a run-now copy there (:class:`SiteCopies`).

The shares are :meth:`daemon.sites.SiteView.shares` over the job's run: the PV and battery
share of GPU energy the service's rounds saw (no meter on the PV or the battery; running GPUs
counted at TDP x PUE, so shares are conservative when GPUs draw less).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from daemon.accounting.run_now_site import CopySite
from daemon.sites.view import SiteView
from policies.footprint.outcome import relative_error
from policies.footprint.site import SiteFactors

__all__ = ["SiteCopies", "site_columns"]

J_PER_KWH: Final = 3_600_000


def site_columns(
    columns: Mapping[str, Any], pv_share: float, battery_share: float, factors: SiteFactors
) -> dict[str, Any]:
    """``columns`` (an ``outcomes`` row) with ``site_pv_j``, ``site_battery_j`` and
    ``site_grid_j`` (facility energy: ``energy_j`` x ``pue``) and, where the realised grid
    intensity is known, ``operational_g`` and ``total_g`` recomputed: grid energy at that
    intensity, PV and battery energy at ``factors``. Unchanged without an energy.

    A run-now copy that costs the run's grams (``run_now_total_g`` equal to ``total_g``: the
    copy is the run itself, :func:`daemon.accounting.finished.is_the_run`) costs the split's
    grams too: run-now, on the same GPUs at the same time, would have drawn the same PV and
    battery energy. Until 2026-12-07 it kept the grid-only grams, and the site's whole offset
    read as a saving (or, where the grid is cleaner than PV, a loss)."""
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
    own_copy = out.get("total_g") is not None and out.get("run_now_total_g") == out["total_g"]
    out["operational_g"] = operational
    if out.get("embodied_g") is not None:
        out["total_g"] = operational + float(out["embodied_g"])
        if own_copy:
            out["run_now_total_g"] = out["total_g"]
    return _errors(out, operational * J_PER_KWH / facility if facility > 0 else None)


@dataclass(frozen=True, slots=True)
class SiteCopies:
    """The sites of ``view`` as the ending of one job re-prices its run-now copy
    (:class:`daemon.accounting.run_now_site.CopySites`): ``observe`` advances them to the
    job's end (as its own split does, :meth:`SiteView.observe`), asked only for a copy at a
    region with a site."""

    view: SiteView
    observe: Callable[[], None]

    def copy_site(self, region: str, start: datetime, end: datetime) -> CopySite | None:
        """The site of ``region`` and its shares over ``[start, end]`` where its rounds saw
        it whole (None: no site there)."""
        site = self.view.sites.get(region)
        if site is None:
            return None
        self.observe()
        return CopySite(site.factors, self.view.seen_shares(region, start, end))


def _errors(columns: dict[str, Any], effective: float | None) -> dict[str, Any]:
    """``columns`` with the prediction errors of ``details_json`` recomputed for the grams of
    the split: the decision predicted the site's effective intensity (grid blended with on-site
    energy, per facility kWh) and its grams, not the grid's."""
    try:
        details = json.loads(columns.get("details_json") or "")
    except (TypeError, ValueError):
        return columns
    if not isinstance(details, dict):
        return columns
    pairs = (
        ("intensity_error_rel", effective, columns.get("predicted_intensity_g_per_kwh")),
        ("total_error_rel", columns.get("total_g"), columns.get("predicted_total_g")),
    )
    for key, measured, predicted in pairs:
        if key in details and measured is not None and predicted is not None:
            error = relative_error(float(measured), float(predicted))
            details[key] = error if math.isfinite(error) else None
    return columns | {"details_json": json.dumps(details)}
