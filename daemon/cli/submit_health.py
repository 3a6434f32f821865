"""The GPUs the running daemon does not plan on, as its ``health.json`` names them, for
``carbond submit``'s checks (:func:`daemon.cli.submit_checks.submit_warnings`).

The daemon keeps two kinds of a configured GPU out of planning and reports each as a
``gpu:<device id>`` problem (docs/gpus.md), its message naming the device id and the problem
carrying it as ``device_id``: a declared local GPU NVML cannot run jobs on (``declared qc/2
(A100-80GB): NVML has no GPU at index 2; not planned on``) and a GPU lost while it ran
(``lost: qc/1 (A100-80GB): GPU 1 lost: ...``). Only a daemon still running counts: one that
starts again checks its declared GPUs again.
"""

from __future__ import annotations

from daemon.catalog import gpu_catalog
from daemon.doctor.running_daemon import still_the_daemon
from daemon.inventory import build_inventory
from daemon.settings import Settings
from daemon.supervision.health import HEALTH_NAME, read_health

__all__ = ["unplanned_gpus"]


def unplanned_gpus(settings: Settings) -> dict[str, str]:
    """Device id -> the running daemon's problem (``gpu:qc/1: declared qc/1 ...``) of each GPU
    the config's regions declare that the daemon does not plan on; empty when no daemon runs
    on ``settings.state_dir`` or its health cannot be read."""
    state = settings.state_dir
    report = read_health(state / HEALTH_NAME)
    if report is None or not still_the_daemon(report.pid, state):
        return {}
    regions = [r for r in settings.regions if r.gpus != "discover"]
    ids = {gpu.device_id for gpu in build_inventory(regions, gpu_catalog(settings))}
    return {
        device_id: f"{key}: {report.problems[key]}"
        for key, device_id in report.device_ids.items()
        if device_id in ids and key in report.problems
    }
