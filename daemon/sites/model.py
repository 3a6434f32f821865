"""A region's site, built from its ``[regions.site]`` settings: PV and other-load power on any
grid, the battery and the life-cycle factors of on-site energy.

Modelled PV (pvlib clear sky) is computed lazily, a few days at a time on a 5-minute grid, and
kept: planning asks for it every tick, accounting once per replay. A measured CSV is reread when
its file changes (a measurement logger appending rows) and said stale once ``now`` is past its
last row by a grace (:meth:`Site.refresh`); past that grace measured PV is 0 W.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import structlog

from daemon.errors import UsageError
from daemon.settings import RegionSettings, Settings, SiteSettings, config_problem
from forecasts import ForecastsError
from forecasts.solar import PowerSeries, PvArray, clear_sky_pv, load_power_csv
from policies.footprint.site import Battery, SiteFactors

__all__ = ["Site", "SiteConfigError", "build_site", "build_sites", "sites_of"]

FloatArray = npt.NDArray[np.float64]

_MODEL_STEP_S = 300
_MODEL_SPAN = timedelta(days=4)
_DAY_S = 86_400.0
_STALE_AFTER_S = 3600.0  # a measured CSV's last row may end this long (or two steps) before now

log = structlog.get_logger(__name__)


class SiteConfigError(UsageError):
    """A site that cannot be built (unreadable CSV, a zone shared with another region).

    ``region`` and ``field`` (its dotted path in the region: ``site.pv_csv``, ``zone``) say
    which setting is at fault; ``reason`` why. Its message is ``regions.REGION.FIELD:
    REASON``, or the whole ``line`` given (``FILE:LINE: ...``, :func:`sites_of`)."""

    def __init__(self, reason: str, *, region: str, field: str, line: str | None = None) -> None:
        self.reason = reason
        self.region = region
        self.field = field
        super().__init__(line or f"regions.{region}.{field}: {reason}")

    def loc(self, names: Sequence[str]) -> tuple[int | str, ...]:
        """The setting's location as a settings error has it (``("regions", 1, "site",
        "pv_csv")``), ``names`` the regions' names in their order."""
        return ("regions", names.index(self.region), *self.field.split("."))


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
    pv_csv: Path | None = None  # the files of ``pv_trace`` and ``other_trace``
    other_load_csv: Path | None = None
    _modelled: PowerSeries | None = field(default=None, repr=False)
    _stamps: dict[str, tuple[int, int, int] | None] = field(default_factory=dict, repr=False)
    _stale: dict[str, datetime] = field(default_factory=dict, repr=False)

    def fresh(self) -> Site:
        """A site of the same settings and rows read, with no state of its own yet (no
        modelled PV kept, nothing said stale): one per service of a replay, the CSVs not read
        again (a file changed since is reread by :meth:`refresh`, as by any site)."""
        site = Site(self.region, self.zone, self.pv_array, self.pv_trace, self.other_load_w,
                    self.other_trace, self.battery, self.factors, self.plan, self.pv_csv,
                    self.other_load_csv)  # fmt: skip
        site._stamps.update(self._stamps)
        return site

    def refresh(self, now: datetime) -> None:
        """Reread each measured CSV whose file changed since it was read (size, time or inode;
        one that cannot be read now is logged and the rows read before are kept), and warn
        once per last row when ``now`` is past it by the grace (:func:`_grace_s`): after it
        there is no measured PV (0 W) and the other load's last row holds."""
        for name in ("pv_csv", "other_load_csv"):
            path: Path | None = getattr(self, name)
            trace = self.pv_trace if name == "pv_csv" else self.other_trace
            if path is None or trace is None:
                continue
            stamp = _stamp(path)
            if stamp != self._stamps.get(name):
                self._stamps[name] = stamp
                trace = self._reread(name, path, trace)
            end = _end(trace)
            late_s = (now - end).total_seconds()
            if late_s > _grace_s(trace) and self._stale.get(name) != end:
                self._stale[name] = end
                log.warning("site_csv_stale", region=self.region, field=name, path=str(path),
                            last_row_end=end.isoformat(), late_s=late_s,
                            held_w=self._after_end_w(name, trace))  # fmt: skip

    def problems(self) -> list[str]:
        """The measured CSVs :meth:`refresh` last found stale, one line each."""
        lines = []
        for name, trace in (("pv_csv", self.pv_trace), ("other_load_csv", self.other_trace)):
            if trace is not None and self._stale.get(name) == (end := _end(trace)):
                since = end + timedelta(seconds=_grace_s(trace))
                held = (
                    f"no PV is counted after {since.isoformat()} (0 W)"
                    if name == "pv_csv"
                    else f"its last row ({float(trace.values_w[-1]):g} W) stands for every "
                    "step since"
                )
                lines.append(f"{name} {getattr(self, name)} ends {end.isoformat()}: {held}")
        return lines

    @staticmethod
    def _after_end_w(name: str, trace: PowerSeries) -> float:
        """The power a CSV stands for once past its last row by the grace."""
        return 0.0 if name == "pv_csv" else float(trace.values_w[-1])

    def _reread(self, name: str, path: Path, trace: PowerSeries) -> PowerSeries:
        try:
            series = load_power_csv(path)
        except ForecastsError as exc:
            log.warning("site_csv_unreadable", region=self.region, field=name, error=str(exc),
                        kept_until=_end(trace).isoformat())  # fmt: skip
            return trace
        if name == "pv_csv":
            self.pv_trace = series
        else:
            self.other_trace = series
        log.info("site_csv_reread", region=self.region, field=name, path=str(path),
                 rows=len(series.values_w), last_row_end=_end(series).isoformat())  # fmt: skip
        return series

    def pv_w(self, start: datetime, step_s: float, count: int) -> FloatArray:
        """Mean PV power (W) over each of ``count`` steps of ``step_s`` from ``start``."""
        if (trace := self.pv_trace) is not None:  # no PV measured past the last row's grace
            after = (start - _end(trace)).total_seconds() + np.arange(count) * step_s
            measured: FloatArray = trace.on_grid(start, step_s, count)
            return np.where(after >= _grace_s(trace), 0.0, measured)
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
        # a day before the first row is not measured: no PV is promised there (the first
        # row's power held from it; a new logger's or a replay's first day saw it all day)
        return _persisted(self.pv_w, now, start, step_s, count, self.pv_trace.start)

    def other_w(self, start: datetime, step_s: float, count: int) -> FloatArray:
        """Mean power (W) of the site's other load over each step."""
        if self.other_trace is not None:
            return self.other_trace.on_grid(start, step_s, count)
        return np.full(count, self.other_load_w)

    def other_forecast_w(
        self, now: datetime, start: datetime, step_s: float, count: int
    ) -> FloatArray:
        """The other load as planners may know it at ``now``: a constant, or a measured trace
        forecast as measured PV is (:meth:`pv_forecast_w`), except where the day read
        precedes the first row: there its first row's power is held, not 0 W as for PV (the
        conservative side for a load: 0 W would promise its share of the PV to the GPUs; a
        replay notes it, :meth:`daemon.replay.cluster.Cluster.site_notes`)."""
        if self.other_trace is None:
            return self.other_w(start, step_s, count)
        return _persisted(self.other_w, now, start, step_s, count)  # no ``first``: held


def _persisted(
    measured: Callable[[datetime, float, int], FloatArray],
    now: datetime,
    start: datetime,
    step_s: float,
    count: int,
    first: datetime | None = None,
) -> FloatArray:
    """``measured`` on the grid where it is known by ``now``, and after ``now`` the same time
    of the latest day measured by then (seasonal persistence, no peeking at the future); 0 W
    at a step read from before ``first`` (the first row: nothing measured then)."""
    offsets = np.arange(count) * step_s
    ends = (start - now).total_seconds() + offsets + step_s
    days_back = np.ceil(np.maximum(ends, 0.0) / _DAY_S)  # 0: measured by ``now``
    result: FloatArray = measured(start, step_s, count)
    for days in np.unique(days_back[days_back > 0]):
        earlier = measured(start - timedelta(days=float(days)), step_s, count)
        result = np.where(days_back == days, earlier, result)
    if first is not None:
        read_at = (start - first).total_seconds() + offsets - days_back * _DAY_S
        result = np.where(read_at < 0, 0.0, result)
    return result


def _grace_s(series: PowerSeries) -> float:
    """How long past its last row a measured CSV's last row stands (a logger a little behind):
    an hour, or two rows. After it the CSV is stale: measured PV is taken as 0 W (nothing
    measured is no PV claimed) and the other load's last row holds (the site still draws)."""
    return max(_STALE_AFTER_S, 2.0 * series.step_s)


def _end(series: PowerSeries) -> datetime:
    return series.start + timedelta(seconds=series.step_s * len(series.values_w))


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells a file changed: modification time, size, inode (None: it cannot be seen)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def build_site(region: str, zone: str, cfg: SiteSettings) -> Site:
    """The site of ``region`` (in ``zone``) from its settings.

    Raises:
        SiteConfigError: a measured CSV cannot be read (the message names region, field and
            file).
    """
    pv_array = None
    if cfg.pv_kwp > 0 and cfg.latitude is not None and cfg.longitude is not None:
        # unset: facing the equator (south of it, 180 faced away from the sun)
        azimuth = cfg.azimuth_deg
        if azimuth is None:
            azimuth = 180.0 if cfg.latitude >= 0 else 0.0
        pv_array = PvArray(cfg.pv_kwp, cfg.latitude, cfg.longitude, cfg.tilt_deg,
                           azimuth, cfg.losses)  # fmt: skip
    battery = None
    if cfg.battery is not None:
        b = cfg.battery
        battery = Battery(b.capacity_kwh, b.charge_power_w, b.discharge_power_w,
                          b.round_trip_efficiency, b.min_soc, b.initial_soc)  # fmt: skip
    pv_csv = Path(cfg.pv_csv) if cfg.pv_csv is not None else None
    other_csv = Path(cfg.other_load_csv) if cfg.other_load_csv is not None else None
    paths = {"pv_csv": pv_csv, "other_load_csv": other_csv}
    stamps = {name: _stamp(path) for name, path in paths.items() if path is not None}
    # stamped before reading: a change while it is read is read again
    pv_trace = _read_csv(region, "pv_csv", pv_csv)
    other = _read_csv(region, "other_load_csv", other_csv)
    factors = SiteFactors(cfg.pv_g_per_kwh, cfg.battery_g_per_kwh)
    site = Site(region, zone, pv_array, pv_trace, cfg.other_load_w, other,
                battery, factors, cfg.plan, pv_csv, other_csv)  # fmt: skip
    site._stamps.update(stamps)
    return site


def _read_csv(region: str, name: str, path: Path | None) -> PowerSeries | None:
    """The rows of a site's measured CSV ``name`` at ``path`` (None: not set).

    Raises:
        SiteConfigError: it cannot be read, naming the region and the field.
    """
    try:
        return load_power_csv(path) if path is not None else None
    except ForecastsError as exc:
        raise SiteConfigError(str(exc), region=region, field=f"site.{name}") from exc


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
                f"zone {site.zone} is shared with {', '.join(others)}; "
                "a region with a site needs a zone of its own",
                region=name,
                field="zone",
            )
    return sites


def sites_of(settings: Settings) -> Mapping[str, Site]:
    """:func:`build_sites` of the settings' regions, a problem named as a bad value of the
    config is: ``FILE:LINE: regions.REGION.FIELD: REASON`` (:func:`config_problem`).

    Raises:
        SiteConfigError: as :func:`build_sites`, its message naming the file and line.
    """
    try:
        return build_sites(settings.regions)
    except SiteConfigError as exc:
        loc = exc.loc([region.name for region in settings.regions])
        line = config_problem(settings, loc, exc.reason)
        raise SiteConfigError(exc.reason, region=exc.region, field=exc.field, line=line) from exc
