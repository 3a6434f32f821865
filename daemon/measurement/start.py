"""Which of the inventory's GPUs carbond meters, and on which backend (:func:`start_measurement`,
for the composition root)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from daemon.gpu import GpuMonitor
from daemon.gpu.backend import GpuBackend
from daemon.gpu.errors import NvmlUnavailableError
from daemon.gpu.factory import MIG_NOT_SCHEDULABLE, simulated_spec
from daemon.gpu.nvml import NvmlBackend
from daemon.gpu.simulated import SimulatedGpuBackend
from daemon.inventory import InventoryGpu
from daemon.measurement.jobs import JobMeasurement
from daemon.settings import Settings
from policies.footprint.gpus import GpuCatalog

__all__ = ["start_measurement"]

log = structlog.get_logger(__name__)


def start_measurement(
    settings: Settings,
    catalog: GpuCatalog,
    inventory: Sequence[InventoryGpu],
    *,
    clock: Callable[[], float] = time.monotonic,
    sample: bool = True,
    nvml_module: Any | None = None,
) -> JobMeasurement | None:
    """For the composition root: the measurement of ``inventory``'s GPUs, started.

    - ``local``-executor GPUs are measured through NVML when ``gpu.backend`` is ``nvml`` or
      ``auto`` and NVML works (``auto`` without NVML: not measured, ``gpu_measurement_off``);
    - otherwise ``simulated``-executor GPUs get one simulated device each (catalog idle..TDP
      times ``gpu.simulated_power_factor``), so ``carbond run`` and the demo measure like real
      GPUs (``carbond replay`` attaches no measurement: its planner never recalibrates).

    ``clock`` (monotonic seconds) must follow the service's clock: the wall clock live, the
    simulated one in the demo (with ``sample=False``: no sampler thread; simulated
    devices have exact counters). ``nvml_module`` stands in for ``pynvml`` (tests). Returns None
    when no GPU is measured. The caller closes it.

    Raises:
        NvmlUnavailableError: ``gpu.backend = "nvml"`` and NVML cannot be used.
    """
    local = [g for g in inventory if g.executor == "local"]
    simulated = [g for g in inventory if g.executor == "simulated"]
    backend: GpuBackend | None = None
    index_of: dict[str, int] = {}
    if local and settings.gpu.backend != "simulated":
        nvml = NvmlBackend(nvml_module, clock=clock)
        try:
            nvml.start()
        except NvmlUnavailableError as e:
            if settings.gpu.backend == "nvml":
                raise
            log.warning("gpu_measurement_off", executor="local", reason=str(e))
        else:
            backend, index_of = nvml, {g.device_id: g.index for g in local}
            _name_mig(local, nvml)
    if backend is None and simulated:
        specs = [
            simulated_spec(g.device.gpu, energy_counter=settings.gpu.simulated_energy_counter)
            for g in simulated
        ]
        backend = SimulatedGpuBackend(
            specs, true_power_factor=settings.gpu.simulated_power_factor, clock=clock
        )
        backend.start()
        index_of = {g.device_id: i for i, g in enumerate(simulated)}
    if backend is None:
        return None
    monitor = GpuMonitor(backend, settings.gpu, clock=clock, sample=sample)
    monitor.start()
    log.info("gpu_measurement_on", backend=backend.name, gpus=sorted(index_of))
    return JobMeasurement(monitor, lifetime_years=settings.lifetime_years, index_of=index_of)


def _name_mig(local: Sequence[InventoryGpu], nvml: NvmlBackend) -> None:
    """Warn of each local GPU a region declares that is in MIG mode (discovery leaves such
    GPUs out): its jobs would get its index in ``CUDA_VISIBLE_DEVICES``, no MIG instance."""
    mig = {d.index: d for d in nvml.devices() if d.mig_enabled}
    for gpu in local:
        if (device := mig.get(gpu.index)) is not None:
            log.warning("gpu_declared_in_mig_mode", device_id=gpu.device_id, gpu=gpu.index,
                        uuid=device.uuid, reason=MIG_NOT_SCHEDULABLE + "; jobs planned on it get "
                        "its index all the same: remove it from the region's gpus or disable "
                        "MIG mode")  # fmt: skip
