"""What a recorded end teaches the recalibration factors: whether a succeeded run may teach
its GPU type's (the rule a restart folds the ledger with), and what a run its executor measured
(Slurm's ``sacct``), not this node's GPU meter, teaches once its end is committed
(:class:`~daemon.endings.finishing.Endings` folds it into
:class:`~daemon.learning.factors.Learning`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from daemon.inventory import InventoryGpu
from daemon.learning.factors import teaches
from daemon.ledger import DecisionRecord, Ledger, RunRecord
from daemon.planning import spec_or_none
from policies import Device, JobSpec

if TYPE_CHECKING:  # daemon.endings.finishing imports this module
    from daemon.endings.finishing import EndingContext

__all__ = ["executor_lesson", "run_teaches"]

log = structlog.get_logger("daemon.endings.finishing")  # its events are the endings'


def run_teaches(run: RunRecord, decision: DecisionRecord | None, context: EndingContext) -> bool:
    """Whether ``run`` (succeeded) may teach its GPU type's factors: by the rule a restart
    folds the ledger with (:func:`daemon.learning.factors.teaches`: not a simulated run of a type
    with real GPUs); logged ``recalibration_ignored`` when not."""
    gpu = decision.gpu if decision is not None else None
    simulated = run.executor == "simulated"
    if gpu is not None and teaches(simulated, gpu, context.inventory):
        return True
    log.info("recalibration_ignored", job_id=run.job_id, gpu=gpu, executor=run.executor,
             reason="a simulated run of a GPU type with real GPUs" if simulated
             else "its GPU type has no GPU of its executor kind here")  # fmt: skip
    return False


def executor_lesson(
    ledger: Ledger,
    decision: DecisionRecord,
    columns: Mapping[str, Any],
    inventory: Sequence[InventoryGpu],
) -> tuple[JobSpec, Device, float, float] | None:
    """What a succeeded run (its ``decision``) no GPU meter here followed teaches: ``(job, device,
    measured_energy_j, duration_s)`` when its executor measured its energy, else None. The
    same row fields and GPU type as :func:`daemon.learning.factors.measured_history` reads after a
    restart, so a restart relearns the same factors."""
    energy_j, duration_s = columns.get("measured_energy_j"), columns.get("duration_s")
    if energy_j is None or not duration_s:
        return None
    device = next((g.device for g in inventory if g.device.gpu.name == decision.gpu), None)
    spec = spec_or_none(ledger.job(decision.job_id)) if device is not None else None
    if device is None or spec is None:
        return None
    return spec, device, float(energy_j), float(duration_s)
