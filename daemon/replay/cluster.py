"""The cluster file of a replay: regions (zone, PUE) and their GPUs (catalog type and count).

::

    [[regions]]
    name = "quebec"          # letters, digits, '.', '_' and '-'
    zone = "CA-QC"           # Electricity Maps zone key
    pue = 1.0                # optional, default 1.0
    gpus = [{ type = "T4", count = 8 }]

Device ids are ``<region>/<index>``, as the daemon's inventory names them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daemon.replay.errors import ReplayInputError
from policies import Device
from policies.errors import UnknownGpuError
from policies.footprint import DEFAULT_GPU_CATALOG, GpuCatalog, GpuSpec

__all__ = ["Cluster", "Region", "load_cluster"]


class _GpuEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str = Field(min_length=1)
    count: int = Field(ge=1, le=100_000)


class _RegionEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    zone: str = Field(min_length=1)
    pue: float = Field(default=1.0, ge=1.0, le=3.0)
    gpus: tuple[_GpuEntry, ...] = Field(min_length=1)


class _ClusterFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    regions: tuple[_RegionEntry, ...] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Region:
    """One region of the cluster: its zone, PUE and (GPU type, count) pairs."""

    name: str
    zone: str
    pue: float
    gpus: tuple[tuple[GpuSpec, int], ...]

    @property
    def gpu_count(self) -> int:
        """GPUs in the region."""
        return sum(count for _, count in self.gpus)

    def gpu_names(self) -> tuple[str, ...]:
        """One catalog name per GPU, in index order."""
        return tuple(spec.name for spec, count in self.gpus for _ in range(count))


@dataclass(frozen=True, slots=True)
class Cluster:
    """The regions of a replay."""

    regions: tuple[Region, ...]

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

    def gpu_types(self) -> tuple[GpuSpec, ...]:
        """The distinct GPU types."""
        return tuple({spec.name: spec for r in self.regions for spec, _ in r.gpus}.values())


def load_cluster(path: Path, catalog: GpuCatalog = DEFAULT_GPU_CATALOG) -> Cluster:
    """Read and check the cluster file at ``path``.

    Raises:
        ReplayInputError: unreadable file, bad TOML, a bad field or an unknown GPU type
            (the message names the file and the field).
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        parsed = _ClusterFile.model_validate(raw)
    except OSError as exc:
        raise ReplayInputError(f"{path}: cannot read cluster file ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ReplayInputError(f"{path}: not valid TOML ({exc})") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ReplayInputError(f"{path}: {where}: {err['msg']}") from exc
    names = [r.name for r in parsed.regions]
    if len(set(names)) != len(names):
        raise ReplayInputError(f"{path}: region names must be unique, got {names}")
    regions = []
    for i, entry in enumerate(parsed.regions):
        try:
            gpus = tuple((catalog.get(g.type), g.count) for g in entry.gpus)
        except UnknownGpuError as exc:
            raise ReplayInputError(f"{path}: regions.{i}.gpus: {exc}") from exc
        regions.append(Region(entry.name, entry.zone, entry.pue, gpus))
    return Cluster(tuple(regions))
