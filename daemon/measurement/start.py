"""Which of the inventory's GPUs carbond meters, and on which backend (:func:`start_measurement`,
for the composition root)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from daemon.gpu import GpuMonitor
from daemon.gpu.backend import GpuBackend, GpuDevice
from daemon.gpu.declared import MismatchKind, check_declared, define_board_hint
from daemon.gpu.errors import NvmlUnavailableError
from daemon.gpu.factory import MIG_NOT_SCHEDULABLE, simulated_spec
from daemon.gpu.nvml import NvmlBackend
from daemon.gpu.simulated import SimulatedGpuBackend
from daemon.inventory import InventoryGpu
from daemon.measurement.jobs import JobMeasurement
from daemon.settings import Settings
from policies.footprint.gpus import GpuCatalog

__all__ = ["declared_unusable", "start_measurement"]

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
      a declared one NVML cannot run jobs on is refused (:func:`declared_unusable`, again at
      each reload): the service keeps it unavailable, as a lost GPU;
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
    refused: dict[str, str] = {}
    vet: Callable[[Sequence[InventoryGpu]], dict[str, str]] | None = None
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
            devices = nvml.devices()
            refused = declared_unusable(local, devices, catalog)
            vet = functools.partial(declared_unusable, devices=devices, catalog=catalog)
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
    return JobMeasurement(
        monitor,
        lifetime_years=settings.lifetime_years,
        index_of=index_of,
        refused=refused,
        vet=vet,
    )


def declared_unusable(
    local: Sequence[InventoryGpu], devices: Sequence[GpuDevice], catalog: GpuCatalog
) -> dict[str, str]:
    """Device id -> why, of each local GPU a region declares that NVML cannot run its jobs
    on (:func:`daemon.gpu.declared.check_declared`, as ``carbond doctor`` judges it): none at
    its index (never there, or lost or unpowered before this start: skipped at discovery), one
    the catalog knows as another GPU (the planner would fit and price jobs on the declared
    one), or one in MIG mode (its index in ``CUDA_VISIBLE_DEVICES`` reaches no MIG instance).
    Each is logged (``gpu_declared_unusable``); the service keeps it out of planning as it does
    a lost GPU. A board the catalog lacks is planned on as the declared type, logged
    (``gpu_declared_not_in_catalog``, a warning naming how to define it).
    """
    refused: dict[str, str] = {}
    for gpu in local:
        declared = f"declared {gpu.device_id} ({gpu.device.gpu.name})"
        mismatch = check_declared(gpu.index, gpu.device.gpu.name, devices, catalog)
        if mismatch is None:
            continue
        device = mismatch.device
        board = device.name if device is not None else ""
        if mismatch.kind is MismatchKind.ABSENT:
            why = f"NVML has no GPU at index {gpu.index}"
        elif mismatch.kind is MismatchKind.OTHER_TYPE:
            why = f"NVML has {board} ({mismatch.seen_type}) at index {gpu.index}"
        elif mismatch.kind is MismatchKind.MIG:
            why = f"NVML has GPU {gpu.index} in MIG mode: {MIG_NOT_SCHEDULABLE}"
        else:
            log.warning("gpu_declared_not_in_catalog", device_id=gpu.device_id, gpu=gpu.index,
                        name=board, reason=f"{declared}: NVML has {board}, a board the catalog "
                        f"lacks, at index {gpu.index}: {define_board_hint(mismatch)}")  # fmt: skip
            continue
        refused[gpu.device_id] = f"{declared}: {why}; not planned on"
        log.error("gpu_declared_unusable", device_id=gpu.device_id, gpu=gpu.index,
                  uuid=device.uuid if device is not None else None,
                  reason=refused[gpu.device_id])  # fmt: skip
    return refused
