"""Replay accounting at regions with a site: each job's energy split into on-site PV, battery
and grid, and the site's flows over the replay (for the figure).

After a policy's replay, every site region's GPU (facility) load is rebuilt on a 5-minute grid
from the runs (each draws its energy times the PUE evenly over its run), the site is dispatched
step by step (:func:`policies.footprint.site.dispatch`: PV, then battery, then grid) and each
job gets its shares of the steps it spans (:func:`~policies.footprint.site.split_jobs`). Only
grid energy is charged at the realised grid intensity; PV and battery energy at the site's
life-cycle factors. Regions without a site keep today's figures, all grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from policies.footprint.site import SiteFlows, dispatch, split_jobs
from policies.means import mean_intensities

if TYPE_CHECKING:  # the driver imports this module
    from daemon.replay.driver import JobOutcome, ReplaySetup

__all__ = ["SITE_STEP_S", "SiteRecord", "account_sites", "daily_offset"]

FloatArray = npt.NDArray[np.float64]
SITE_STEP_S = 300
_CHUNK = 1024


@dataclass(frozen=True, slots=True)
class SiteRecord:
    """One site's flows over a replay; step ``k`` starts ``k * flows.step_s`` after ``start``."""

    region: str
    start: datetime
    flows: SiteFlows


def _load_w(
    starts: FloatArray, ends: FloatArray, power_w: FloatArray, edges: FloatArray
) -> FloatArray:
    """Mean power per step of jobs drawing ``power_w`` over ``[start, end)`` (seconds)."""
    energy = np.zeros(len(edges))
    for lo in range(0, len(starts), _CHUNK):
        s, e, p = starts[lo : lo + _CHUNK], ends[lo : lo + _CHUNK], power_w[lo : lo + _CHUNK]
        covered = np.clip(edges[None, :], s[:, None], e[:, None]) - s[:, None]
        energy += p @ covered
    result: FloatArray = np.maximum(np.diff(energy) / np.diff(edges), 0.0)  # rounding below 0
    return result


def account_sites(
    setup: ReplaySetup, outcomes: Sequence[JobOutcome]
) -> tuple[list[JobOutcome], tuple[SiteRecord, ...]]:
    """``outcomes`` with their PV, battery and grid energy (J, facility) and, at site regions,
    operational grams from the site model; and each site's flows."""
    pue = {r.name: r.pue for r in setup.cluster.regions}
    result = [  # all grid first (as the driver accounts them: those are kept, not copied)
        o
        if o.grid_j == (grid_j := o.energy_j * pue[o.region]) and not o.pv_j and not o.battery_j
        else replace(o, grid_j=grid_j, pv_j=0.0, battery_j=0.0)
        for o in outcomes
    ]
    records = []
    sites = setup.cluster.sites()  # the rows read with the cluster
    for region in setup.cluster.regions:
        if region.site is None:
            continue
        index = [i for i, o in enumerate(result) if o.region == region.name]
        site = sites[region.name]
        start = setup.start.replace(minute=0, second=0, microsecond=0)
        last = max([result[i].ended_at for i in index], default=setup.end)
        count = max(int(np.ceil((max(last, setup.end) - start).total_seconds() / SITE_STEP_S)), 1)
        edges = np.arange(count + 1, dtype=np.float64) * SITE_STEP_S
        starts = np.array([(result[i].started_at - start).total_seconds() for i in index])
        durations = np.array([(result[i].ended_at - result[i].started_at).total_seconds()
                              for i in index])  # fmt: skip
        energy = np.array([result[i].energy_j * region.pue for i in index])
        power = np.where(durations > 0, energy / np.where(durations > 0, durations, 1.0), 0.0)
        gpu_w = _load_w(starts, starts + durations, power, edges)
        pv_w = site.pv_w(start, SITE_STEP_S, count)
        other_w = site.other_w(start, SITE_STEP_S, count)
        flows = dispatch(pv_w, gpu_w, other_w, SITE_STEP_S, site.battery)
        actual = setup.signals.actual(region.zone)
        offset = (actual.start - start).total_seconds()
        grid_ci = mean_intensities(actual.values_g_per_kwh, actual.step_s, offset, edges[:-1],
                                   np.full(count, float(SITE_STEP_S)))  # fmt: skip
        split = split_jobs(flows, grid_ci, site.factors, starts, durations, energy)
        for k, i in enumerate(index):
            result[i] = replace(
                result[i], pv_j=float(split.pv_j[k]), battery_j=float(split.battery_j[k]),
                grid_j=float(split.grid_j[k]), operational_g=float(split.operational_g[k]),
            )  # fmt: skip
        records.append(SiteRecord(region.name, start, flows))
    return result, tuple(records)


def daily_offset(outcomes: Sequence[JobOutcome]) -> dict[str, float]:
    """Share of the GPU (facility) energy covered on site per UTC day of the jobs' starts."""
    onsite: dict[str, float] = {}
    total: dict[str, float] = {}
    for o in outcomes:
        day = o.started_at.date().isoformat()
        onsite[day] = onsite.get(day, 0.0) + o.pv_j + o.battery_j
        total[day] = total.get(day, 0.0) + o.pv_j + o.battery_j + o.grid_j
    return {day: onsite[day] / total[day] if total[day] else 0.0 for day in sorted(total)}
