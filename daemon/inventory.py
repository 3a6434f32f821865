"""The devices the service may place jobs on, built from the configured regions.

A region declares its GPUs by catalog name (list position = CUDA index) or ``"discover"``;
discovery (NVML) is injected by the composition root, so this module stays hardware-free.
Device ids are ``<region>/<index>``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from daemon.settings import RegionSettings
from policies import Device
from policies.errors import UnknownGpuError
from policies.footprint import DEFAULT_GPU_CATALOG, GpuCatalog

__all__ = ["Discover", "InventoryGpu", "build_inventory"]

log = structlog.get_logger(__name__)

# Given a region, the (CUDA index, GPU name) pairs found on this node.
Discover = Callable[[RegionSettings], Sequence[tuple[int, str]]]


@dataclass(frozen=True, slots=True)
class InventoryGpu:
    """One GPU: the planner's view, its CUDA index and the executor that starts jobs on it."""

    device: Device
    index: int
    executor: str

    @property
    def device_id(self) -> str:
        """``<region>/<index>``."""
        return self.device.device_id


def _define(board: str) -> str:
    """How a site defines a discovered ``board`` the catalog lacks (docs/gpus.md)."""
    return (f"region discovered a board the catalog lacks: define it in carbond.toml as a "
            f"[catalog.gpus.NAME] table giving every GpuSpec field and nvml_names = "
            f"[{json.dumps(board)}] (docs/gpus.md, \"A GPU the catalog lacks\")")  # fmt: skip


def build_inventory(
    regions: Sequence[RegionSettings],
    catalog: GpuCatalog = DEFAULT_GPU_CATALOG,
    discover: Discover | None = None,
) -> tuple[InventoryGpu, ...]:
    """Every GPU of every region. A ``"discover"`` region without ``discover`` has none
    (logged as ``region_without_gpus``).

    Raises:
        UnknownGpuError: a declared or discovered name the catalog does not know (a
            discovered one says how to define it: its ``hint``).
    """
    gpus: list[InventoryGpu] = []
    for region in regions:
        if region.gpus == "discover":
            found = list(discover(region)) if discover is not None else []
        else:
            found = list(enumerate(region.gpus))
        if not found:
            log.warning("region_without_gpus", region=region.name, gpus=str(region.gpus))
        for index, name in found:
            try:
                spec = catalog.get(name)
            except UnknownGpuError as exc:
                if region.gpus != "discover" or region.executor == "slurm":
                    raise  # a declared name (checked with the settings), a GRES type
                raise UnknownGpuError(name, exc.known, _define(name)) from None
            device = Device(
                device_id=f"{region.name}/{index}",
                region=region.name,
                zone=region.zone,
                gpu=spec,
                pue=region.pue,
            )
            gpus.append(InventoryGpu(device, index, region.executor))
    return tuple(gpus)
