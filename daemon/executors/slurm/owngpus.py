"""carbond's own Slurm jobs changed behind its back: a job's owner may ``scontrol update``
their own pending job (``Gres=gpu:2``, its ``StartTime``), and Slurm then runs it with what
they asked, not what carbond planned. carbond counts its own jobs' GPUs from its plan, so an
extra GPU was invisible to the planner and charged as one in embodied carbon.

:class:`OwnGpus` remembers, in memory, each of carbond's jobs' planned GPU count and the
count Slurm gave it (the partition's running rows, ``squeue`` ``tres-per-node``/``tres-alloc``,
read every planning round): the extra GPUs are busy for the planner as another user's would
be (:meth:`extra`), the change is logged once (``slurm_job_changed_outside``). The job's end
is charged the GPUs it held (:meth:`charged`: :attr:`ExitStatus.gpus`, its reason saying so)
as its ``sacct`` row says (``AllocTRES``, read with its end), so the charge does not depend on
a planning round having seen it run (a job that started and ended between rounds, or while
carbond was down); what a round saw counts only where sacct does not say. A restarted daemon
knows the plan from the ledger again at its first poll. A job carbond takes back, withdraws,
cancels refusing it (root's, a refused release) or resubmits elsewhere (a move to another
cluster), and a held job Slurm ended unstarted, is forgotten (:meth:`forget`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import structlog

from daemon.executors.base import ExitStatus
from daemon.executors.slurm.parse import RunningRow

__all__ = ["OwnGpus"]

log = structlog.get_logger("daemon.executors.slurm.executor")

Key = tuple[str | None, str]  # (cluster, Slurm id)


@dataclass(slots=True)
class OwnGpus:
    """Planned and real GPU counts of carbond's own Slurm jobs, by (cluster, Slurm id)."""

    planned: dict[Key, tuple[str, int]] = field(default_factory=dict)  # job id, GPUs
    held: dict[Key, int] = field(default_factory=dict)  # GPUs Slurm gave it, where not planned

    def plan(self, cluster: str | None, slurm_id: str, job_id: str, gpus: int | None) -> None:
        """``job_id``'s Slurm job ``slurm_id`` was planned ``gpus`` GPUs (None: not known)."""
        if gpus is not None:
            self.planned[(cluster, slurm_id)] = (job_id, gpus)

    def extra(self, cluster: str | None, rows: Sequence[RunningRow]) -> list[RunningRow]:
        """Of the running rows of carbond's jobs ``rows``, for each that holds more GPUs than
        planned, a row of the GPUs beyond the plan (the planned ones are busy already), to be
        counted busy as another user's; each change logged once
        (``slurm_job_changed_outside``)."""
        out = []
        for row in rows:
            key = (cluster, row.slurm_id)
            if key not in self.planned or not row.nodes:  # a row cut short has none
                continue
            job_id, planned = self.planned[key]
            actual = row.gpus_per_node * len(row.nodes)
            if actual == planned:
                continue
            if self.held.get(key) != actual:
                self.held[key] = actual
                log.warning("slurm_job_changed_outside", job_id=job_id, cluster=cluster,
                            slurm_id=row.slurm_id, field="gres/gpu", planned=planned,
                            actual=actual)  # fmt: skip
            if actual > planned:
                per_node = -(-(actual - planned) // len(row.nodes))
                out.append(replace(row, gpus_per_node=per_node))
        return out

    def forget(self, cluster: str | None, slurm_id: str) -> None:
        """Slurm job ``slurm_id`` is no longer carbond's to follow (taken back, withdrawn,
        cancelled refused or to resubmit it elsewhere, ended unstarted by Slurm)."""
        self.planned.pop((cluster, slurm_id), None)
        self.held.pop((cluster, slurm_id), None)

    def charged(
        self, cluster: str | None, slurm_id: str, status: ExitStatus, gpus: int | None = None
    ) -> ExitStatus:
        """``status`` of the ended job, with the GPUs it held where Slurm gave it other than
        planned (its reason saying so): ``gpus``, its sacct row's (None: not printed), else
        those a planning round saw; the job is forgotten."""
        planned = self.planned.pop((cluster, slurm_id), None)
        seen = self.held.pop((cluster, slurm_id), None)
        actual = gpus if gpus is not None else seen
        if planned is None or actual is None or actual == planned[1]:
            return status
        note = (f"; it held {actual} GPUs, not the {planned[1]} planned (its Slurm job's GRES "
                "changed outside carbond)")  # fmt: skip
        return replace(status, gpus=actual, reason=status.reason + note)
