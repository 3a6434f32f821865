"""The GPUs the running daemon does not plan on, as its ``health.json`` names them, for
``carbond submit``'s checks (:func:`daemon.cli.submit_checks.submit_warnings`).

The daemon keeps two kinds of a configured GPU out of planning and reports each as a
``gpu:<index>`` problem (docs/gpus.md): a declared local GPU NVML cannot run jobs on
(``declared qc/2 (A100-80GB): NVML has no GPU at index 2; not planned on``: the message names
its device id) and a GPU lost while it ran (``lost: ...``: the index its meter reads, a local
region's list position, or with no local GPU metered the simulated regions' GPUs in order).
Only a daemon still running counts: one that starts again checks its declared GPUs again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from daemon.catalog import gpu_catalog
from daemon.doctor.running_daemon import still_the_daemon
from daemon.inventory import InventoryGpu, build_inventory
from daemon.settings import Settings
from daemon.supervision.health import HEALTH_NAME, read_health

__all__ = ["unplanned_gpus"]

_KEY = re.compile(r"gpu:(\d+)")
_DECLARED = re.compile(r"declared (\S+) \(")


def unplanned_gpus(settings: Settings) -> dict[str, str]:
    """Device id -> the running daemon's problem (``gpu:1: declared qc/1 ...``) of each GPU
    the config's regions declare that the daemon does not plan on; empty when no daemon runs
    on ``settings.state_dir`` or its health cannot be read."""
    state = settings.state_dir
    report = read_health(state / HEALTH_NAME)
    if report is None or not still_the_daemon(report.pid, state):
        return {}
    regions = [r for r in settings.regions if r.gpus != "discover"]
    declared = build_inventory(regions, gpu_catalog(settings))
    ids = {gpu.device_id for gpu in declared}
    metered = _metered(settings, declared)
    found: dict[str, str] = {}
    for key, message in report.problems.items():
        if (match := _KEY.fullmatch(key)) is None:
            continue
        named = _DECLARED.match(message)
        if named is not None:
            device_id: str | None = named.group(1)
        elif message.startswith("lost: "):
            device_id = metered.get(int(match.group(1)))
        else:
            continue
        if device_id in ids:
            found[device_id] = f"{key}: {message}"
    return found


def _metered(settings: Settings, declared: Sequence[InventoryGpu]) -> dict[int, str]:
    """Meter index -> device id, as :func:`daemon.measurement.start_measurement` numbers the
    GPUs it meters: a local region's by their index (NVML; a discovering region's are not
    in ``declared``), else the simulated ones in order."""
    if settings.gpu.backend != "simulated" and any(r.executor == "local" for r in settings.regions):
        return {g.index: g.device_id for g in declared if g.executor == "local"}
    simulated = [g for g in declared if g.executor == "simulated"]
    return {i: g.device_id for i, g in enumerate(simulated)}
