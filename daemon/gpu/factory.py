"""Choosing and starting the GPU backend from settings, and matching devices to the catalog.

``gpu.backend``:

- ``nvml``: real GPUs through NVML; an unusable NVML is an error.
- ``simulated``: one simulated device per name in ``gpu.simulated_gpus`` (catalog names), idle
  and TDP from the catalog, drawing ``gpu.simulated_power_factor`` × the catalog's power.
- ``auto``: NVML when it starts and finds at least one GPU; otherwise simulated, with a
  ``gpu_backend_fallback`` log line saying why.

Jobs run on the :func:`schedulable` devices only: not on a GPU in MIG mode, whose instances CUDA
reaches only by ``MIG-<uuid>`` names while carbond gives a job whole GPUs by index.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from daemon.gpu.backend import GpuBackend, GpuDevice
from daemon.gpu.errors import GpuError, NvmlUnavailableError
from daemon.gpu.nvml import NvmlBackend
from daemon.gpu.simulated import SimulatedGpuBackend, SimulatedGpuSpec
from daemon.settings import GpuSettings
from policies.errors import UnknownGpuError
from policies.footprint.gpus import GpuCatalog, GpuSpec

__all__ = ["MIG_NOT_SCHEDULABLE", "match_catalog", "schedulable", "simulated_spec", "start_backend"]

log = structlog.get_logger(__name__)

_BYTES_PER_GB = 1_000_000_000

MIG_NOT_SCHEDULABLE = (
    "MIG mode is enabled: CUDA reaches its instances only as MIG-<uuid>, while carbond gives a "
    "job whole GPUs by index and assigns no MIG instance"
)


def simulated_spec(gpu: GpuSpec, *, energy_counter: bool = True) -> SimulatedGpuSpec:
    """The simulated device for catalog entry ``gpu`` (idle and TDP power, memory)."""
    return SimulatedGpuSpec(
        name=gpu.name,
        idle_power_w=gpu.idle_w,
        tdp_w=gpu.tdp_w,
        memory_total_bytes=round(gpu.memory_gb * _BYTES_PER_GB),
        energy_counter=energy_counter,
    )


def match_catalog(devices: Sequence[GpuDevice], catalog: GpuCatalog) -> dict[int, GpuSpec | None]:
    """Catalog entry of each device by its NVML name (None where the catalog has no match)."""
    matched: dict[int, GpuSpec | None] = {}
    for device in devices:
        try:
            matched[device.index] = catalog.get(device.name)
        except UnknownGpuError:
            log.warning("gpu_not_in_catalog", gpu=device.index, name=device.name)
            matched[device.index] = None
    return matched


def schedulable(devices: Sequence[GpuDevice]) -> tuple[GpuDevice, ...]:
    """The devices carbond may run jobs on: all but those in MIG mode (``mig_enabled`` None,
    MIG not supported, is no MIG), each logged once (``gpu_not_schedulable``)."""
    for device in devices:
        if device.mig_enabled:
            log.warning("gpu_not_schedulable", gpu=device.index, name=device.name,
                        uuid=device.uuid, reason=MIG_NOT_SCHEDULABLE)  # fmt: skip
    return tuple(d for d in devices if not d.mig_enabled)


def _simulated(
    settings: GpuSettings, catalog: GpuCatalog, clock: Callable[[], float]
) -> SimulatedGpuBackend:
    try:
        specs = [
            simulated_spec(catalog.get(name), energy_counter=settings.simulated_energy_counter)
            for name in settings.simulated_gpus
        ]
    except UnknownGpuError as e:
        raise GpuError(f"gpu.simulated_gpus: {e}") from e
    return SimulatedGpuBackend(
        specs, true_power_factor=settings.simulated_power_factor, clock=clock
    )


def start_backend(
    settings: GpuSettings,
    catalog: GpuCatalog,
    *,
    clock: Callable[[], float] = time.monotonic,
    nvml_module: Any | None = None,
) -> GpuBackend:
    """Build and start the backend ``settings.backend`` names (see the module docstring).

    Args:
        nvml_module: the ``pynvml`` stand-in to use (tests); default: the real bindings.

    Raises:
        NvmlUnavailableError: ``nvml`` was asked for and NVML cannot be used.
        GpuError: a simulated GPU name is not in the catalog.
    """
    if settings.backend in ("nvml", "auto"):
        nvml = NvmlBackend(nvml_module, clock=clock)
        try:
            nvml.start()
        except NvmlUnavailableError as e:
            if settings.backend == "nvml":
                raise
            log.warning("gpu_backend_fallback", backend="simulated", reason=str(e))
        else:
            if nvml.devices() or settings.backend == "nvml":
                match_catalog(nvml.devices(), catalog)
                return nvml
            nvml.close()
            log.warning("gpu_backend_fallback", backend="simulated", reason="NVML found no GPU")
    backend = _simulated(settings, catalog, clock)
    backend.start()
    log.info("gpu_backend_started", backend="simulated", devices=len(backend.devices()))
    return backend
