"""``carbond gpus --live``: the GPUs the daemon runs on, per region, as it reads them now.

With regions on this node (``executor`` ``local`` or ``simulated``) the GPUs are the daemon's
own: its inventory, discovered as it discovers (NVML, or the ``gpu.simulated_gpus`` stand-ins
of a ``"discover"`` region where it falls back to them), and read through the backend it
meters them on (:func:`daemon.measurement.start_measurement`: NVML for local GPUs, one
simulated device per GPU of a simulated region, built from its catalog entry). A GPU the
daemon does not meter (local GPUs under ``gpu.backend = "simulated"``, or without NVML) is
listed with ``metered`` false and no readings: inventing them would mislead. Why NVML could
not meter them is one ``carbond: note:`` line on stderr, not the daemon's JSON log lines.

With no such region, this node's GPUs as the configured backend reads them: NVML under
``nvml`` or ``auto`` (``auto`` does not fall back to simulated devices here), the
``gpu.simulated_gpus`` devices under ``simulated``. Without a usable backend the command fails
with one line saying why and what to set.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from daemon.catalog import gpu_catalog
from daemon.cli.context import settings_from
from daemon.cli.output import print_json, print_table
from daemon.errors import DaemonError
from daemon.gpu import GpuBackend, NvmlBackend, NvmlUnavailableError
from daemon.gpu.backend import GpuDevice
from daemon.gpu.factory import match_catalog, start_backend
from daemon.settings import RegionSettings, Settings
from policies.footprint import GpuCatalog

__all__ = ["live_gpus", "live_rows", "region_rows"]

_BYTES_PER_GB = 1_000_000_000
_READINGS = (
    "power_w",
    "power_limit_w",
    "utilisation_pct",
    "memory_used_gb",
    "memory_total_gb",
    "temperature_c",
    "fan_pct",
    "sm_clock_mhz",
)
_COLUMNS = ("index", "name", "catalog_name", *_READINGS, "energy_counter")
_REGION_COLUMNS = ("region", "device_id", "executor", "name", "metered", "planned", *_READINGS)
_UNREAD = ("uuid", "name", "catalog_name", "mig_enabled", "energy_counter", *_READINGS,
           "memory_clock_mhz")  # fmt: skip
_ON_THIS_NODE = ("local", "simulated")  # a Slurm region's GPUs are on its partition's nodes
_NO_NVML = (
    'for simulated devices set gpu.backend = "simulated", e.g. CARBOND_GPU__BACKEND=simulated'
)


# The daemon's own warnings while this command builds its GPUs, said in one line each instead:
# (logger, event, the line's subject, how a record's fields read in it)
_NOT_METERED = "local GPUs not metered"  # the rows show metered false
_NOT_PLANNED = "GPUs not planned on"  # the rows show planned false, or leave them out
_HELD_EVENTS: tuple[tuple[str, str, str, Callable[[dict[str, Any]], str]], ...] = (
    ("daemon.measurement.start", "gpu_measurement_off", _NOT_METERED, lambda f: str(f["reason"])),
    ("daemon.gpu.factory", "gpu_backend_fallback", _NOT_METERED, lambda f: str(f["reason"])),
    ("daemon.measurement.start", "gpu_declared_unusable", _NOT_PLANNED, lambda f: str(f["reason"])),
    ("daemon.gpu.factory", "gpu_not_schedulable", _NOT_PLANNED,
     lambda f: f"GPU {f['gpu']} ({f['name']}): {f['reason']}"),
)  # fmt: skip


class _Held(logging.Filter):
    """Holds back the daemon's ``event`` log lines (a JSON line next to a table), keeping
    each one's fields as ``said`` reads them."""

    def __init__(
        self, event: str, said: Callable[[dict[str, Any]], str], reasons: list[str]
    ) -> None:
        super().__init__()
        self._event, self._said, self._reasons = event, said, reasons

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.msg
        if isinstance(fields, dict) and fields.get("event") == self._event:
            self._reasons.append(self._said(fields))
            return False
        return True


@contextmanager
def _said_in_one_line() -> Iterator[None]:
    """The daemon's NVML warnings, said on stderr as one readable line per subject (GPUs
    not metered, GPUs not planned on) when the block ends."""
    reasons: dict[str, list[str]] = {_NOT_METERED: [], _NOT_PLANNED: []}
    held = [(logging.getLogger(name), _Held(event, said, reasons[subject]))
            for name, event, subject, said in _HELD_EVENTS]  # fmt: skip
    for logger, check in held:
        logger.addFilter(check)
    try:
        yield
    finally:
        for logger, check in held:
            logger.removeFilter(check)
    for subject, said in reasons.items():
        if said:
            why = "; ".join(dict.fromkeys(said))  # the same NVML error once
            print(f"carbond: note: {subject} ({why})", file=sys.stderr)


def _readings(backend: GpuBackend, device: GpuDevice, catalog_name: str | None) -> dict[str, Any]:
    reading = backend.read(device.index)
    used = reading.memory_used_bytes
    return {
        "uuid": device.uuid,
        "name": device.name,
        "catalog_name": catalog_name,
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


def live_rows(backend: GpuBackend, catalog: GpuCatalog) -> list[dict[str, Any]]:
    """One row of live readings per device of the started ``backend``."""
    matched = match_catalog(backend.devices(), catalog)
    rows = []
    for device in backend.devices():
        spec = matched[device.index]
        name = spec.name if spec else None
        rows.append({"backend": backend.name, "index": device.index,
                     **_readings(backend, device, name)})  # fmt: skip
    return rows


def region_rows(
    settings: Settings, catalog: GpuCatalog, regions: Sequence[RegionSettings]
) -> list[dict[str, Any]]:
    """One row per GPU the daemon runs on in ``regions`` (in the config's order), discovered
    and metered as the daemon does: ``region, device_id, executor, index`` (the CUDA index),
    ``catalog_name``, ``metered`` and ``backend`` (None where not metered), ``planned`` and
    ``not_planned`` (why the daemon keeps a declared GPU out of planning, else None:
    :func:`daemon.measurement.start.declared_unusable`), and the readings of
    :func:`live_rows` (None where not metered; ``name`` then the catalog name).

    Raises:
        NvmlUnavailableError: ``gpu.backend = "nvml"`` and NVML cannot be used.
        UnknownGpuError: a discovered GPU the catalog does not know.
    """
    from daemon.assemble import gpu_discovery
    from daemon.inventory import build_inventory
    from daemon.measurement import start_measurement

    discover, release = gpu_discovery(settings)
    try:
        inventory = build_inventory(regions, catalog, discover)
    finally:
        release()
    measurement = start_measurement(settings, catalog, inventory, sample=False)
    rows = []
    try:
        for gpu in inventory:
            index = None if measurement is None else measurement.device_index(gpu.device_id)
            refused = None if measurement is None else measurement.refusal(gpu.device_id)
            row: dict[str, Any] = {
                "region": gpu.device.region,
                "device_id": gpu.device_id,
                "executor": gpu.executor,
                "metered": index is not None,
                "planned": refused is None,
                "not_planned": refused,
                "backend": None,
                "index": gpu.index,
            }
            catalog_name = gpu.device.gpu.name
            if measurement is None or index is None:
                row.update(dict.fromkeys(_UNREAD), name=catalog_name, catalog_name=catalog_name)
            else:
                backend = measurement.monitor.backend
                device = next(d for d in backend.devices() if d.index == index)
                row.update(backend=backend.name, **_readings(backend, device, catalog_name))
            rows.append(row)
    finally:
        if measurement is not None:
            measurement.close()
    return rows


def live_gpus(args: argparse.Namespace) -> int:
    """Print the live readings (``--json``: a list of rows, those of :func:`region_rows` where
    regions run on this node, else those of :func:`live_rows`).

    Raises:
        DaemonError: no GPU backend can be started (the message says what to set).
    """
    settings = settings_from(args)
    catalog = gpu_catalog(settings)
    regions = [r for r in settings.regions if r.executor in _ON_THIS_NODE]
    if regions:
        try:
            with _said_in_one_line():
                rows = region_rows(settings, catalog, regions)
        except NvmlUnavailableError as e:
            raise DaemonError(f"no live GPU readings: {e} ({_NO_NVML})") from e
        if args.json:
            print_json(rows)
            return 0
        title = "GPUs the daemon runs on, per region (unmetered: no readings)"
        print_table(title, _REGION_COLUMNS, [[row[c] for c in _REGION_COLUMNS] for row in rows])
        return 0
    backend: GpuBackend
    if settings.gpu.backend == "simulated":
        backend = start_backend(settings.gpu, catalog)
    else:
        backend = NvmlBackend()
        try:
            backend.start()
        except NvmlUnavailableError as e:
            raise DaemonError(f"no live GPU readings: {e} ({_NO_NVML})") from e
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
