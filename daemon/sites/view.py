"""What planners see of the sites: per zone, the effective intensity of the next GPU kWh.

:class:`SiteView` keeps each site's battery state of charge between planning rounds (advanced
with the PV, the other load and the GPU load that was running) and turns the grid forecast of a
site's zone into :func:`policies.footprint.site.effective_intensity` on the same grid: grid
intensity blended with the PV that would be curtailed and the battery energy no running job
needs, shared over the GPUs free at each step. Running and free GPUs are counted at their TDP
times the site's PUE, so the surplus is never over-promised (realised shares are computed from
the jobs' own energy afterwards).

Only the planner's view changes: measured outcomes keep reading the grid series.

The daemon keeps each battery's state of charge across restarts in the state dir's
``sites.json`` (:meth:`SiteView.save` after its steps, :meth:`SiteView.restore` at start): the
next daemon advances the battery from that round to its first one under the PV, the other load
and the GPU load running then, as if no round had come between.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import structlog

from daemon.ledger.export import write_replacing
from daemon.sites.model import Site
from forecasts import ForecastsError
from policies import Device, PoliciesError, ZoneIntensity
from policies.footprint.site import dispatch, effective_intensity

__all__ = ["SITES_NAME", "SiteIntensity", "SiteView"]

SITES_NAME: Final = "sites.json"  # in the state dir: each battery's charge, for a restart

FloatArray = npt.NDArray[np.float64]
_MAX_STEP_S = 300.0  # the battery is advanced in steps no longer than this
_KEEP_S = 7 * 86_400.0  # share history kept for outcomes (jobs longer than a week: partial)
_SAVE_EVERY_S = 30.0  # sites.json is rewritten at most this often (of the rounds' time)
_RESUME_S = 86_400.0  # a saved round at most this long before the start is advanced from
_SEEN_SLACK_S = 1.0  # a window this much past the rounds seen is seen (rounding)

_SITE_ERRORS = (PoliciesError, ForecastsError, ValueError)  # one site's model failing

log = structlog.get_logger(__name__)


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
        self.sites = dict(sites)  # every site is tracked; only those with ``plan`` are seen
        self._soc = {r: s.battery.initial_soc for r, s in self.sites.items() if s.battery}
        # region -> (when, GPU load running then W, one GPU's load W)
        self._last: dict[str, tuple[datetime, float, float]] = {}
        # region -> [epoch s, integral of the PV share, of the battery share] at each round
        self._shares: dict[str, list[tuple[float, float, float]]] = {}
        self._saved: dict[str, dict[str, Any]] = {}  # the batteries as last written
        self._save_tried: datetime | None = None  # the last write's round
        self._save_failing = False  # the last write failed (logged)
        self._failed: dict[str, str] = {}  # region -> the error its site failed with, logged
        self._broken: set[str] = set()  # the regions whose site failed in the last observe

    def __bool__(self) -> bool:
        return bool(self.sites)

    def carry_over(self, previous: SiteView) -> None:
        """Keep ``previous``'s battery state and share history for the regions that still have
        a site (a SIGHUP reload builds a new view). A charge below a raised ``min_soc`` is
        taken at the new floor: nothing is deliverable until PV charges it."""
        for region in self.sites.keys() & previous.sites.keys():
            battery = self.sites[region].battery
            if region in previous._soc and battery is not None:  # within the new bounds
                self._soc[region] = min(max(previous._soc[region], battery.min_soc), 1.0)
            if region in previous._last:
                self._last[region] = previous._last[region]
            if region in previous._shares:
                self._shares[region] = previous._shares[region]

    def problems(self) -> dict[str, str]:
        """``site:<region>``: what is wrong with each site now (its model failing, a measured
        CSV stale), for ``health.json``."""
        out = {}
        for region, site in self.sites.items():
            lines = site.problems()
            if region in self._failed:
                lines.insert(0, f"failing ({self._failed[region]}): planned and counted as grid")
            if lines:
                out[f"site:{region}"] = "; ".join(lines)
        return out

    def save(self, path: Path, now: datetime | None = None) -> None:
        """Write each battery's state of charge, the round it was advanced to and the load
        running then to ``path`` (atomically) when a battery moved since the last write, at
        most every ``_SAVE_EVERY_S`` of ``now`` (None: now, at a stop). Never raises: a failed
        write is logged once per failure streak."""
        batteries = {}
        for region, soc in self._soc.items():
            if (last := self._last.get(region)) is not None:
                at, running_w, nominal_w = last
                batteries[region] = {"soc": soc, "at": at.isoformat(), "running_w": running_w,
                                     "nominal_w": nominal_w}  # fmt: skip
        if not batteries or batteries == self._saved:
            return
        if now is not None:
            tried = self._save_tried
            if tried is not None and (now - tried).total_seconds() < _SAVE_EVERY_S:
                return
            self._save_tried = now
        try:
            write_replacing(path, lambda out: json.dump({"batteries": batteries}, out, indent=1))
        except OSError as exc:
            if not self._save_failing:
                log.warning("site_state_write_failed", path=str(path), error=str(exc))
            self._save_failing = True
            return
        self._saved, self._save_failing = batteries, False

    def restore(self, path: Path, now: datetime) -> None:
        """Resume each battery from ``path`` (:meth:`save`, by a daemon before this one): its
        charge (within the configured bounds) and, when that round is at most ``_RESUME_S``
        before ``now``, the round it was at (the next round advances it from there; an older
        or a future one: from ``now``). Without the file each starts at ``initial_soc``; a
        file or entry that cannot be read is logged and its batteries start there too."""
        try:
            batteries = json.loads(path.read_text(encoding="utf-8"))["batteries"]
            entries = {r: _entry(e) for r, e in batteries.items() if r in self._soc}
        except FileNotFoundError:
            entries = {}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("site_state_unreadable", path=str(path), error=repr(exc),
                        soc=dict(self._soc))  # fmt: skip
            return
        for region, soc in self._soc.items():
            battery = self.sites[region].battery
            if region not in entries or battery is None:
                log.info("site_battery_initial", region=region, soc=soc)
                continue
            saved, at, running_w, nominal_w = entries[region]
            self._soc[region] = min(max(saved, battery.min_soc), 1.0)
            resumed = 0 <= (now - at).total_seconds() <= _RESUME_S
            if resumed:
                self._last[region] = (at, running_w, nominal_w)
                self._shares[region] = [(at.timestamp(), 0.0, 0.0)]
            since = at if resumed else now
            log.info("site_battery_restored", region=region, soc=self._soc[region],
                     at=at.isoformat(), advanced_from=since.isoformat())  # fmt: skip

    def shares(self, region: str, start: datetime, end: datetime) -> tuple[float, float]:
        """Mean share of GPU energy the site covered from PV and from the battery over
        ``[start, end]``, as the service's rounds saw it (running GPUs at TDP x PUE; no meter
        on the PV or the battery). ``(0, 0)`` outside the rounds seen or without a site."""
        history = self._shares.get(region)
        span = (end - start).total_seconds()
        if not history or len(history) < 2 or span <= 0:
            return 0.0, 0.0
        times, pv, battery = (np.array(column) for column in zip(*history, strict=True))
        ends = np.array([start.timestamp(), end.timestamp()])
        pv_int, bat_int = np.interp(ends, times, pv), np.interp(ends, times, battery)
        return float(np.diff(pv_int)[0] / span), float(np.diff(bat_int)[0] / span)

    def seen_shares(
        self, region: str, start: datetime, end: datetime
    ) -> tuple[float, float] | None:
        """:meth:`shares` over ``[start, end]`` where the rounds saw it whole (from a round at
        or before ``start`` to one at or after ``end``, to ``_SEEN_SLACK_S``: a window scaled
        to a run's end lands on it but for rounding); None where they did not (a window past
        the last round, or from before the first: what the site covered is not known)."""
        history = self._shares.get(region)
        if not history or end <= start:
            return None
        first, last = history[0][0], history[-1][0]
        if first > start.timestamp() + _SEEN_SLACK_S or last < end.timestamp() - _SEEN_SLACK_S:
            return None
        return self.shares(region, start, end)

    def soc(self, region: str) -> float | None:
        """The battery's state of charge as last advanced (None: no battery)."""
        return self._soc.get(region)

    def forecasts(
        self, now: datetime, devices: Sequence[Device], forecasts: Mapping[str, ZoneIntensity]
    ) -> dict[str, ZoneIntensity]:
        """``forecasts`` with every site's zone replaced by its effective intensity."""
        out = dict(forecasts)
        self.observe(now, devices)
        for region, site in self.sites.items():
            mine = [d for d in devices if d.region == region and d.available]
            grid = forecasts.get(site.zone)
            if grid is None or not mine or not site.plan or region in self._broken:
                continue
            try:
                out[site.zone] = self._effective(region, site, mine, grid, now)
            except _SITE_ERRORS as exc:  # this zone is planned on its grid forecast
                self._fail(region, exc)
            else:
                self._recovered(region)
        return out

    def observe(self, now: datetime, devices: Sequence[Device]) -> None:
        """Advance every site to ``now`` under the GPU load of the last round, and remember
        the load running now (GPUs with ``busy_until > now``, at TDP x PUE). A site that fails
        is logged (``site_failed``, once until it recovers) and left where it was: its zone
        is planned on the grid forecast, its jobs' energy counted as grid energy, while the
        other sites go on."""
        self._broken.clear()
        for region, site in self.sites.items():
            mine = [d for d in devices if d.region == region and d.available]
            running = [d.gpu.tdp_w * d.pue for d in mine if d.busy_until and d.busy_until > now]
            nominal = min((d.gpu.tdp_w * d.pue for d in mine), default=0.0)
            try:
                site.refresh(now)
                self._advance(region, site, now, sum(running), nominal)
            except _SITE_ERRORS as exc:
                self._broken.add(region)
                self._fail(region, exc)
            else:
                if not site.plan:  # else once its zone's intensity is seen through it again
                    self._recovered(region)

    def _fail(self, region: str, exc: Exception) -> None:
        if self._failed.get(region) != str(exc):
            log.error("site_failed", region=region, zone=self.sites[region].zone,
                      error=str(exc), fallback="grid")  # fmt: skip
        self._failed[region] = str(exc)

    def _recovered(self, region: str) -> None:
        if self._failed.pop(region, None) is not None:
            log.info("site_recovered", region=region)

    def _advance(
        self, region: str, site: Site, now: datetime, running_w: float, nominal_w: float
    ) -> None:
        """Move the battery from the last round to ``now`` under the load running then, and
        extend the share history (with nothing running: the shares one GPU would have got)."""
        last = self._last.get(region)
        if last is not None and now < last[0]:  # an end reported after a later round: the
            now = last[0]  # site has been advanced to that round already
        self._last[region] = (now, running_w, nominal_w)
        history = self._shares.setdefault(region, [])
        if last is None or now <= last[0]:
            if not history:
                history.append((now.timestamp(), 0.0, 0.0))
            return
        then, load_w, one_gpu_w = last
        span_s = (now - then).total_seconds()
        count = max(1, math.ceil(span_s / _MAX_STEP_S))
        step_s = span_s / count
        pv = site.pv_w(then, step_s, count)
        other = site.other_w(then, step_s, count)
        soc = self._soc.get(region)
        flows = dispatch(pv, load_w, other, step_s, site.battery, soc)
        if site.battery is not None:
            self._soc[region] = float(flows.soc[-1])
        if load_w <= 0:  # nothing ran: what one GPU would have got (the battery stays put)
            flows = dispatch(pv, one_gpu_w, other, step_s, site.battery, soc)
        _, pv_int, bat_int = history[-1]
        gpu = np.where(flows.gpu_j > 0, flows.gpu_j, 1.0)
        pv_int += float(np.sum(flows.gpu_pv_j / gpu)) * step_s
        bat_int += float(np.sum(flows.gpu_battery_j / gpu)) * step_s
        history.append((now.timestamp(), pv_int, bat_int))
        while len(history) > 2 and history[1][0] < now.timestamp() - _KEEP_S:
            history.pop(0)

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
        other = site.other_forecast_w(now, grid.start, step, n)
        soc = self._soc.get(region)
        # the forecast starts at the hour's top, the battery's state is now's: the elapsed part
        # of the first step is not dispatched again (until 2026-12-08 it was: drained twice)
        elapsed_s = min(max((now - grid.start).total_seconds(), 0.0), float(step))

        def through_site(series: FloatArray) -> FloatArray:
            return effective_intensity(series, pv, other, committed, free, step, site.factors,
                                       site.battery, soc, step - elapsed_s)  # fmt: skip

        upper = getattr(grid, "upper_g_per_kwh", None)
        return SiteIntensity(
            grid.zone, grid.start, step, through_site(values),
            None if upper is None else through_site(np.asarray(upper, dtype=np.float64)),
        )  # fmt: skip


def _entry(entry: Any) -> tuple[float, datetime, float, float]:
    """One battery of ``sites.json``: charge, round, load running then, one GPU's load.

    Raises:
        ValueError, TypeError, KeyError: a field missing, of the wrong type or out of range.
    """
    soc, running_w, nominal_w = (float(entry[k]) for k in ("soc", "running_w", "nominal_w"))
    at = datetime.fromisoformat(entry["at"])
    if at.tzinfo is None or not all(
        math.isfinite(v) and v >= 0 for v in (soc, running_w, nominal_w)
    ):
        raise ValueError(f"not a battery state: {entry!r}")
    return soc, at, running_w, nominal_w
