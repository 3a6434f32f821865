"""The cluster of a replay: its regions (zone, PUE) and their GPUs (catalog type and count).

A cluster file is read with the daemon's own region model (:class:`daemon.settings.RegionSettings`),
so an operator's ``carbond.toml`` is itself a cluster file (its sections other than
``[catalog]``, the site's GPU overrides and own types, are ignored here), and a replay cluster
file is a valid ``[[regions]]`` list for the daemon::

    [[regions]]
    name = "quebec"          # letters, digits, '.', '_' and '-'
    zone = "CA-QC"           # Electricity Maps zone key
    pue = 1.0                # optional, default 1.0
    gpus = [{ type = "T4", count = 8 }]   # or ["T4", "T4", ...]; not "discover"
    [regions.site]           # optional: on-site PV, battery, other load (SiteSettings)
    pv_kwp = 6.0
    latitude = 37.77
    longitude = -122.42
    [catalog.gpus.L40]       # optional: a GPU type the built-in catalog lacks (docs/gpus.md)

Device ids are ``<region>/<index>``, as the daemon's inventory names them.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from daemon.replay.errors import ReplayInputError
from daemon.settings import CatalogSettings, RegionSettings, SiteSettings
from daemon.settings.regions import region_field, region_names, regions_listed, site_csvs_under
from daemon.settings.toml_lines import line_of, syntax_parts
from daemon.sites import Site, SiteConfigError, build_site, build_sites
from policies import Device
from policies.errors import UnknownGpuError
from policies.footprint import DEFAULT_GPU_CATALOG, GpuCatalog, GpuSpec

__all__ = ["Cluster", "Region", "load_cluster"]


class _ClusterFile(BaseModel):
    """The part of a cluster or daemon config file a replay reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    catalog: CatalogSettings = CatalogSettings()
    regions: tuple[RegionSettings, ...] = Field(min_length=1)

    _regions_listed = field_validator("regions", mode="before")(regions_listed)


@dataclass(frozen=True, slots=True)
class Region:
    """One region of the cluster: its zone, PUE and (GPU type, count) pairs."""

    name: str
    zone: str
    pue: float
    gpus: tuple[tuple[GpuSpec, int], ...]
    site: SiteSettings | None = None  # on-site PV, battery and other load

    @property
    def gpu_count(self) -> int:
        """GPUs in the region."""
        return sum(count for _, count in self.gpus)

    def gpu_names(self) -> tuple[str, ...]:
        """One catalog name per GPU, in index order."""
        return tuple(spec.name for spec, count in self.gpus for _ in range(count))


@dataclass(frozen=True, slots=True)
class Cluster:
    """The regions of a replay, and the sites :func:`load_cluster` built (their CSVs read once:
    checked, noted and accounted from these rows)."""

    regions: tuple[Region, ...]
    built: Mapping[str, Site] = dc_field(default_factory=dict)  # by region name
    # the file's [catalog]: its GPU overrides and own types, as the daemon's settings hold them
    catalog: CatalogSettings = dc_field(default_factory=CatalogSettings)
    gpu_catalog: GpuCatalog = DEFAULT_GPU_CATALOG  # the one the regions' GPUs were found in

    def sites(self) -> dict[str, Site]:
        """A new :class:`Site` of every region with one, by region name, from the rows read
        with the cluster (a region's site not built yet, as in a cluster made in code, is
        built here).

        Raises:
            SiteConfigError: a measured CSV of a site not built yet cannot be read.
        """
        return {
            region.name: (
                self.built[region.name].fresh()
                if region.name in self.built
                else build_site(region.name, region.zone, region.site)
            )
            for region in self.regions
            if region.site is not None
        }

    def devices(self) -> list[Device]:
        """Every GPU as a free planner :class:`Device` named ``<region>/<index>``."""
        return [
            Device(f"{region.name}/{index}", region.name, region.zone, spec, region.pue)
            for region in self.regions
            for index, spec in enumerate(s for s, count in region.gpus for _ in range(count))
        ]

    def zones(self) -> tuple[str, ...]:
        """The distinct zones, in region order."""
        return tuple(dict.fromkeys(region.zone for region in self.regions))

    def zone_regions(self) -> dict[str, tuple[str, ...]]:
        """The regions in each zone, by zone, in region order."""
        out: dict[str, tuple[str, ...]] = {}
        for region in self.regions:
            out[region.zone] = (*out.get(region.zone, ()), region.name)
        return out

    def gpu_types(self) -> tuple[GpuSpec, ...]:
        """The distinct GPU types."""
        return tuple({spec.name: spec for r in self.regions for spec, _ in r.gpus}.values())

    def sites_cover(self, start: datetime, end: datetime, until: datetime | None = None) -> None:
        """Check every measured site CSV (``pv_csv``, ``other_load_csv``) covers
        ``[start, end]``, and up to ``until`` (the jobs' last deadline: they may be held, and
        run, until then) where that is later: outside its rows a power series holds its nearest
        value, so a CSV of another day or year would stand for the whole replay.

        Raises:
            ReplayInputError: a measured CSV ends before ``end`` (``until``) or starts after
                ``start``.
        """
        need = end if until is None else max(end, until)
        why = ""
        if need > end:
            why = f" (the jobs' last deadline; the span ends {end:%Y-%m-%d %H:%M})"
        sites = self.sites()
        for region in self.regions:
            if region.site is None:
                continue
            site = sites[region.name]
            traces = (
                ("pv_csv", region.site.pv_csv, site.pv_trace),
                ("other_load_csv", region.site.other_load_csv, site.other_trace),
            )
            for field, path, trace in traces:
                if trace is None:
                    continue
                last = trace.start + timedelta(seconds=trace.step_s * len(trace.values_w))
                if trace.start > start or last < need:
                    key = f"regions.{region.name}.site.{field}"
                    raise ReplayInputError(
                        f"{key}: {path} covers "
                        f"{trace.start:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}; the replay "
                        f"needs {start:%Y-%m-%d %H:%M} to {need:%Y-%m-%d %H:%M}{why}",
                        field=key,
                    )

    def site_notes(self, start: datetime, horizon: timedelta) -> list[str]:
        """A note for each measured CSV (``pv_csv``, ``other_load_csv``) whose first row is
        less than the planners' look-back before ``start``: they forecast it from the same
        hour of the latest day measured (one day before, two past 24 h ahead). Where that
        precedes a ``pv_csv``'s first row they see no PV, so the replay's first day plans as
        if the site had none; where it precedes an ``other_load_csv``'s they see its first
        row's power held (the conservative side for a load: 0 W would promise its share of
        the PV to the GPUs), not the load's daily profile."""
        back = timedelta(days=max(1, math.ceil(horizon.total_seconds() / 86_400)))
        notes = []
        sites = self.sites()
        for region in self.regions:
            if region.site is None:
                continue
            site = sites[region.name]
            for name, path, trace in (("pv_csv", site.pv_csv, site.pv_trace),
                                      ("other_load_csv", site.other_load_csv,
                                       site.other_trace)):  # fmt: skip
                if trace is None or trace.start <= start - back:
                    continue
                seen = (
                    "no PV ahead"
                    if name == "pv_csv"
                    else f"its first row's power ({float(trace.values_w[0]):g} W) ahead, held,"
                )
                notes.append(
                    f"regions.{region.name}.site.{name}: {path} starts "
                    f"{trace.start:%Y-%m-%d %H:%M}, less than {back.days} day(s) before the "
                    f"replay: until {trace.start + back:%Y-%m-%d %H:%M} planners see {seen} "
                    "where the day before precedes its first row (they forecast a measured "
                    "CSV from the days before; accounting reads the rows)"
                )
        return notes


def load_cluster(path: Path, catalog: GpuCatalog | None = None) -> Cluster:
    """Read and check the cluster file at ``path``: its GPUs are names in ``catalog``,
    default the built-in one with the file's ``[catalog]`` applied (its own GPU types added).

    Raises:
        ReplayInputError: unreadable file, not UTF-8, bad TOML, a bad field or an unknown GPU type
            (the message names the file and the field).
    """
    text, raw = "", None
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
        parsed = _ClusterFile.model_validate(raw)
    except OSError as exc:
        raise ReplayInputError(f"cannot read cluster file ({exc.strerror})", file=path) from exc
    except UnicodeDecodeError as exc:  # was a traceback (a .gz or binary file named)
        raise ReplayInputError("not a cluster file (not UTF-8 text)", file=path) from exc
    except tomllib.TOMLDecodeError as exc:
        line, problem = syntax_parts(exc)
        raise ReplayInputError(problem, file=path, line=line) from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        where = region_field(err["loc"], region_names(raw))
        msg = err["msg"].removeprefix("Value error, ")
        line = line_of(text, err["loc"])
        raise ReplayInputError(f"{where}: {msg}", file=path, line=line, field=where) from exc
    # a site's relative CSV is the cluster file's neighbour, not the working directory's
    parsed = parsed.model_copy(update={"regions": site_csvs_under(parsed.regions, path.parent)})
    if catalog is None:
        catalog = parsed.catalog.gpu_catalog()  # each table checked with the settings
    names = [r.name for r in parsed.regions]
    for i, name in enumerate(names):
        if name in names[:i]:  # the second one named, at its line
            first = names.index(name)
            key = f"regions.{i}.name"
            raise ReplayInputError(
                f"{key}: duplicate region name {name!r} (also regions.{first})",
                file=path, line=_line(text, i, "name"), field=key,
            )  # fmt: skip
    regions = []
    for i, entry in enumerate(parsed.regions):
        key, line = f"regions.{entry.name}.gpus", _line(text, i, "gpus")
        if entry.gpus == "discover":
            raise ReplayInputError(
                f"{key}: region {entry.name!r} discovers its GPUs with NVML; a replay needs "
                "them declared (a list of catalog names or { type, count } tables)",
                file=path, line=line, field=key,
            )  # fmt: skip
        try:
            specs = [catalog.get(name) for name in entry.gpus]
        except UnknownGpuError as exc:
            raise ReplayInputError(f"{key}: {exc}", file=path, line=line, field=key) from exc
        regions.append(Region(entry.name, entry.zone, entry.pue, _runs(specs), entry.site))
    try:  # measured CSVs readable (read here only), a zone of its own per site
        sites = build_sites(parsed.regions)
    except SiteConfigError as exc:  # at the line of the field at fault, as a bad value
        line = line_of(text, exc.loc(names))
        key = f"regions.{exc.region}.{exc.field}"
        raise ReplayInputError(str(exc), file=path, line=line, field=key) from exc
    return Cluster(tuple(regions), sites, parsed.catalog, catalog)


def _line(text: str, region: int, field: str) -> int | None:
    """The line of ``regions[region].field`` in the cluster file (None if the scan cannot
    place it)."""
    return line_of(text, ("regions", region, field))


def _runs(specs: list[GpuSpec]) -> tuple[tuple[GpuSpec, int], ...]:
    """Consecutive GPUs of one type as (type, count) pairs, in index order."""
    pairs: list[tuple[GpuSpec, int]] = []
    for spec in specs:
        if pairs and pairs[-1][0].name == spec.name:
            pairs[-1] = (spec, pairs[-1][1] + 1)
        else:
            pairs.append((spec, 1))
    return tuple(pairs)
