"""The ``[[regions]]`` section: where GPUs are, which grid feeds them, how jobs start there
(a Slurm partition, an on-site PV array and battery)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from daemon.settings.sbatch_options import refusal
from daemon.settings.sections import ConfigPath, Section, error_at

__all__ = [
    "BatterySettings",
    "RegionSettings",
    "SiteSettings",
    "SlurmRegionSettings",
    "expand_gpu_entries",
    "region_field",
    "region_names",
    "regions_listed",
    "site_csvs_under",
]

_REGION_NAME = r"^[A-Za-z0-9_.-]+$"
_SLURM_NAME = r"^[A-Za-z0-9_.+-]+$"  # partition, cluster, account, qos, GRES names
# Past any site (a finite 1e308 overflows the site's dispatch to inf): its powers, the largest
# PV park's 10 GW as a measured CSV's rows (forecasts.solar.MAX_POWER_W); its battery, 1 TWh;
# a life-cycle factor, the most a grid's intensity may read (10,000 g/kWh).
_MAX_SITE_W = 1e10
_MAX_BATTERY_KWH = 1e9
_MAX_G_PER_KWH = 10_000.0


class SlurmRegionSettings(Section):
    """Where a region's jobs go in Slurm (``[regions.slurm]`` of an ``executor = "slurm"``
    region): ``sbatch --partition``, ``--clusters`` (``cluster``), ``--account``, ``--qos``;
    ``gres`` is the GRES name of its GPUs (``--gres=<gres>:N``); ``gpu_types`` maps a GRES type
    (``t4`` in ``gpu:t4:2``) to a GPU catalog name where the names differ by more than case;
    ``sbatch_options`` are passed to ``sbatch`` as they are (each one whole option, e.g.
    ``"--mem=16G"``), after carbond's own; one that would replace what carbond sets or
    relies on is refused (:mod:`daemon.settings.sbatch_options`)."""

    partition: str = Field(min_length=1, pattern=_SLURM_NAME)
    cluster: str | None = Field(default=None, pattern=_SLURM_NAME)
    account: str | None = Field(default=None, pattern=_SLURM_NAME)
    qos: str | None = Field(default=None, pattern=_SLURM_NAME)
    gres: str = Field(default="gpu", pattern=_SLURM_NAME)
    gpu_types: dict[str, str] = Field(default_factory=dict)
    sbatch_options: tuple[str, ...] = ()

    @field_validator("sbatch_options")
    @classmethod
    def _whole_options(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        account, qos = info.data.get("account") is not None, info.data.get("qos") is not None
        for option in value:
            if (why := refusal(option, account=account, qos=qos)) is not None:
                raise ValueError(why)
        return value


class BatterySettings(Section):
    """An on-site battery, charged from the site's PV only (``policies.footprint.site.Battery``)."""

    capacity_kwh: float = Field(gt=0, le=_MAX_BATTERY_KWH)
    charge_power_w: float = Field(ge=0, le=_MAX_SITE_W)
    discharge_power_w: float = Field(ge=0, le=_MAX_SITE_W)
    round_trip_efficiency: float = Field(default=0.9, gt=0, le=1)
    min_soc: float = Field(default=0.1, ge=0, lt=1)
    initial_soc: float = Field(default=0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _initial_above_floor(self) -> BatterySettings:
        if self.initial_soc < self.min_soc:  # at the line that set initial_soc, else min_soc's
            field = "initial_soc" if "initial_soc" in self.model_fields_set else "min_soc"
            message = f"initial_soc {self.initial_soc} is below min_soc {self.min_soc}"
            raise error_at((field,), message, getattr(self, field))
        return self


class SiteSettings(Section):
    """A region's on-site energy: PV (modelled with pvlib from ``pv_kwp`` and where and how the
    array sits, or measured: ``pv_csv``; not both), an optional battery and the site's other load
    (``other_load_w`` constant, or ``other_load_csv``). CSVs are ``datetime,power_w``.
    ``pv_g_per_kwh`` and ``battery_g_per_kwh`` are the life-cycle factors of on-site energy.
    ``plan = false`` keeps the site out of planning (accounting only: what a site-blind planner
    would do there)."""

    pv_kwp: float = Field(default=0.0, ge=0, le=_MAX_SITE_W / 1000)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    tilt_deg: float = Field(default=20.0, ge=0, le=90)
    # None: facing the equator (180 north of it, 0 south of it), as PVWatts defaults
    azimuth_deg: float | None = Field(default=None, ge=0, le=360)
    losses: float = Field(default=0.14, ge=0, lt=1)
    pv_csv: ConfigPath | None = None
    other_load_w: float = Field(default=0.0, ge=0, le=_MAX_SITE_W)
    other_load_csv: ConfigPath | None = None
    pv_g_per_kwh: float = Field(default=41.0, ge=0, le=_MAX_G_PER_KWH)
    battery_g_per_kwh: float = Field(default=41.0, ge=0, le=_MAX_G_PER_KWH)
    battery: BatterySettings | None = None
    plan: bool = True

    @model_validator(mode="after")
    def _pv_has_a_place(self) -> SiteSettings:
        # each at the line of the key that makes it a problem, not the [regions.site] header
        if self.pv_kwp > 0 and self.pv_csv is not None:  # the CSV would win
            message = "pv_kwp and pv_csv both set: give one of them"
            raise error_at(("pv_csv",), message, str(self.pv_csv))
        if self.pv_kwp > 0 and None in (self.latitude, self.longitude):
            message = "pv_kwp needs latitude and longitude (or a measured pv_csv instead)"
            raise error_at(("pv_kwp",), message, self.pv_kwp)
        if self.other_load_w > 0 and self.other_load_csv is not None:  # the CSV would win
            message = "other_load_w and other_load_csv both set: give one of them"
            raise error_at(("other_load_csv",), message, str(self.other_load_csv))
        return self


class RegionSettings(Section):
    """One region: where GPUs are, which grid feeds them, how jobs start there.

    ``gpus`` is ``"discover"`` (NVML finds this node's GPUs; for a Slurm region, the nodes of
    its partition) or a list with one entry per GPU, each a GPU catalog name
    (``["RTX6000-Ada", "RTX6000-Ada"]``) or a ``{ type, count }`` table standing for ``count``
    GPUs of that type (``[{ type = "T4", count = 4 }]``, the form replay cluster files use);
    list position is the CUDA index. This one model is read by the daemon and by
    ``carbond replay --cluster``, so an operator can replay their own config. A region with
    ``executor = "slurm"`` needs a ``[regions.slurm]`` table (:class:`SlurmRegionSettings`).
    """

    name: str = Field(min_length=1, pattern=_REGION_NAME)
    zone: str = Field(min_length=1)
    pue: float = Field(default=1.0, ge=1.0, le=3.0)
    # the executors carbond has (daemon.assemble.build_executors): a typo was a valid config
    # that doctor passed and `carbond run` refused without naming the file or the line
    executor: Literal["local", "simulated", "slurm"] = "local"
    gpus: Literal["discover"] | tuple[str, ...] = "discover"
    site: SiteSettings | None = None
    slurm: SlurmRegionSettings | None = None

    @model_validator(mode="after")
    def _slurm_table(self) -> RegionSettings:
        # at the executor's line, or the [regions.slurm] table's, not the [[regions]] header
        if self.executor == "slurm" and self.slurm is None:
            message = (
                f'region {self.name}: executor = "slurm" needs a [regions.slurm] table '
                "with at least a partition"
            )
            raise error_at(("executor",), message, self.executor)
        if self.executor != "slurm" and self.slurm is not None:
            message = f'region {self.name}: a [regions.slurm] table needs executor = "slurm"'
            raise error_at(("slurm",), message, self.slurm.partition)
        return self

    @field_validator("gpus", mode="before")
    @classmethod
    def _discover_or_list(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "discover":
            raise ValueError(f'must be "discover" or a list of GPU catalog names, got {value!r}')
        if isinstance(value, list | tuple):
            if not value:
                raise ValueError('a region needs at least one GPU (or "discover")')
            return tuple(expand_gpu_entries(value))
        return value


class _GpuCount(Section):
    """``{ type = "T4", count = 4 }``: ``count`` GPUs of one catalog type."""

    type: str = Field(min_length=1)
    count: int = Field(ge=1, le=100_000)


def expand_gpu_entries(entries: list[Any] | tuple[Any, ...]) -> list[Any]:
    """Names stay; each ``{type, count}`` table becomes ``count`` names (raises ValueError
    naming the entry's position and field)."""
    names: list[Any] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            names.append(entry)
            continue
        try:
            table = _GpuCount.model_validate(entry)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "entry"
            raise ValueError(f"entry {index}: {field}: {err['msg']}") from None
        names.extend([table.type] * table.count)
    return names


def site_csvs_under(regions: tuple[RegionSettings, ...], base: Path) -> tuple[RegionSettings, ...]:
    """``regions`` with each site's relative ``pv_csv`` and ``other_load_csv`` taken under
    ``base``, the directory of the file that names them (``carbond.toml``, a replay cluster
    file), made absolute: the daemon runs from ``/`` under systemd, where ``pv.csv`` beside the
    config would name another file."""
    base = Path(os.path.abspath(base))
    out = []
    for region in regions:
        site = region.site
        moved = {
            name: base / path
            for name in ("pv_csv", "other_load_csv")
            if site is not None
            and (path := getattr(site, name)) is not None
            and not path.is_absolute()
        }
        if site is None or not moved:
            out.append(region)
        else:
            out.append(region.model_copy(update={"site": site.model_copy(update=moved)}))
    return tuple(out)


def region_names(raw: Any) -> list[str | None]:
    """The ``name`` of each ``[[regions]]`` entry of a config's raw (parsed TOML) data, None
    where it is missing, not a valid name, or shared with another entry (it names neither)."""
    regions = raw.get("regions") if isinstance(raw, dict) else None
    if not isinstance(regions, list):
        return []
    names = [
        name
        if isinstance(entry, dict)
        and isinstance(name := entry.get("name"), str)
        and re.fullmatch(_REGION_NAME, name)
        else None
        for entry in regions
    ]
    return [name if names.count(name) == 1 else None for name in names]


def region_field(loc: Sequence[int | str], names: Sequence[str | None]) -> str:
    """The dotted field of a settings error at ``loc``, a region named by its ``name`` as an
    operator finds it (``regions.1.pue`` is ``regions.california.pue``, ``regions.1.site.battery``
    is ``regions.california.site.battery``, as a site's own errors name it); other fields, or a
    region without a valid name of its own, as ``loc`` has them."""
    parts = [str(part) for part in loc]
    index = loc[1] if len(loc) > 1 and loc[0] == "regions" else None
    if isinstance(index, int) and 0 <= index < len(names) and (name := names[index]):
        parts[1] = name
    return ".".join(parts)


def regions_listed(value: Any) -> Any:
    """A ``regions`` value before validation: one ``[regions]`` table (single brackets, a
    common slip) is refused in words, where pydantic said "Input should be a valid tuple".

    Raises:
        ValueError: ``value`` is a table, not a list of them.
    """
    if isinstance(value, dict):
        raise ValueError(
            "a list of tables: write [[regions]] (double brackets) above each region, not [regions]"
        )
    return value
