"""The energy of a run whose GPU is no longer configured (the daemon restarted without its
region, e.g. a Slurm one it still follows to its end): what its executor measured (Slurm's
``sacct``) is kept when plausible for the GPU type its decision named, though its grams stay
unknown (no zone or PUE is known)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from daemon.accounting.unmetered import best_energy, measured_energy_bound_j
from daemon.executors.base import ExitStatus
from daemon.ledger import DecisionRecord, RunRecord
from policies.errors import UnknownGpuError
from policies.footprint import DEFAULT_GPU_CATALOG, GpuCatalog

__all__ = ["reported_energy_columns"]

log = structlog.get_logger(__name__)


def reported_energy_columns(
    run: RunRecord,
    decision: DecisionRecord,
    started: datetime,
    status: ExitStatus,
    catalog: GpuCatalog = DEFAULT_GPU_CATALOG,
) -> dict[str, Any]:
    """``energy_j``, ``measured_energy_j`` and ``energy_method`` of ``run`` from the energy
    its executor reported (J), when at most :func:`measured_energy_bound_j` for its GPUs of
    the type ``decision`` named (``catalog``'s TDP); empty when none was reported, the type
    is unknown (nothing to check it against), or it is above the bound
    (``job_energy_implausible``, logged)."""
    reported = status.energy_j
    if reported is None or decision.gpu is None:
        return {}
    try:
        tdp_w = catalog.get(decision.gpu).tdp_w
    except UnknownGpuError:
        return {}
    duration_s = max(0.0, (status.finished_at - started).total_seconds())
    over_s = duration_s + status.earlier_runs_s  # a requeued job's energy: every run's
    bound_j = measured_energy_bound_j(tdp_w, status.gpus or len(run.device_ids), over_s)
    source = best_energy(duration_s, None, reported, status.energy_method, bound_j)
    if source is None:
        log.warning("job_energy_implausible", job_id=run.job_id, reported_energy_j=reported,
                    energy_method=status.energy_method, duration_s=over_s,
                    max_energy_j=bound_j, gpu=decision.gpu,
                    reason="not finite, or more than its GPUs could draw: set aside")  # fmt: skip
        return {}
    return {"energy_j": source.energy_j, "measured_energy_j": source.energy_j,
            "energy_method": source.method}  # fmt: skip
