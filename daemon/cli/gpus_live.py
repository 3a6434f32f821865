"""``carbond gpus --live``: this node's GPUs as the configured backend reads them now.

``gpu.backend = nvml`` or ``auto`` reads real GPUs through NVML (``auto`` does not fall back to
simulated devices here: showing invented readings as this node's would mislead); ``simulated``
shows the simulated devices, labelled as such. Without a usable backend the command fails with
one line saying why and what to set.
"""

from __future__ import annotations

import argparse
from typing import Any

from daemon.catalog import gpu_catalog
from daemon.cli.context import settings_from
from daemon.cli.output import print_json, print_table
from daemon.errors import DaemonError
from daemon.gpu import GpuBackend, NvmlBackend, NvmlUnavailableError
from daemon.gpu.factory import match_catalog, start_backend
from policies.footprint import GpuCatalog

__all__ = ["live_gpus", "live_rows"]

_BYTES_PER_GB = 1_000_000_000
_COLUMNS = (
    "index",
    "name",
    "catalog_name",
    "power_w",
    "power_limit_w",
    "utilisation_pct",
    "memory_used_gb",
    "memory_total_gb",
    "temperature_c",
    "fan_pct",
    "sm_clock_mhz",
    "energy_counter",
)


def live_rows(backend: GpuBackend, catalog: GpuCatalog) -> list[dict[str, Any]]:
    """One row of live readings per device of the started ``backend``."""
    matched = match_catalog(backend.devices(), catalog)
    rows = []
    for device in backend.devices():
        reading = backend.read(device.index)
        spec = matched[device.index]
        used = reading.memory_used_bytes
        rows.append(
            {
                "backend": backend.name,
                "index": device.index,
                "uuid": device.uuid,
                "name": device.name,
                "catalog_name": spec.name if spec else None,
                "mig_enabled": device.mig_enabled,
                "energy_counter": device.energy_counter,
                "power_w": reading.power_w,
                "power_limit_w": device.power_limit_w,
                "utilisation_pct": reading.utilisation_pct,
                "memory_used_gb": None if used is None else used / _BYTES_PER_GB,
                "memory_total_gb": device.memory_gb,
                "temperature_c": reading.temperature_c,
                "fan_pct": reading.fan_pct,
                "sm_clock_mhz": reading.sm_clock_mhz,
                "memory_clock_mhz": reading.memory_clock_mhz,
            }
        )
    return rows


def live_gpus(args: argparse.Namespace) -> int:
    """Print the live readings (``--json``: a list of rows with the fields of :func:`live_rows`).

    Raises:
        DaemonError: no GPU backend can be started (the message says what to set).
    """
    settings = settings_from(args)
    catalog = gpu_catalog(settings)
    backend: GpuBackend
    if settings.gpu.backend == "simulated":
        backend = start_backend(settings.gpu, catalog)
    else:
        backend = NvmlBackend()
        try:
            backend.start()
        except NvmlUnavailableError as e:
            raise DaemonError(
                f"no live GPU readings: {e} (for simulated devices set gpu.backend = "
                '"simulated", e.g. CARBOND_GPU__BACKEND=simulated)'
            ) from e
    try:
        rows = live_rows(backend, catalog)
    finally:
        backend.close()
    if args.json:
        print_json(rows)
        return 0
    title = f"GPUs on this node ({backend.name})"
    print_table(title, _COLUMNS, [[row[c] for c in _COLUMNS] for row in rows])
    return 0
