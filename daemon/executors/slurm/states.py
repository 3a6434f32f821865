"""Slurm job states as carbond sees them (pure).

A Slurm job is *waiting* (not started: PENDING, REQUEUED, REQUEUE_HOLD, ...), *active*
(started and not ended: RUNNING, COMPLETING, SUSPENDED, ...) or *ended*. An ended job becomes
an :class:`~daemon.executors.base.ExitStatus`:

==============  ==========================================  ==================================
Slurm           exit code / signal                          reason kept
==============  ==========================================  ==================================
COMPLETED       the job's exit code (0; 0 when unreadable)  ``slurm COMPLETED``
FAILED          its exit code, or the signal that killed it ``slurm FAILED``
CANCELLED       none                                        ``slurm CANCELLED (by uid N)``
TIMEOUT         none                                        ``slurm TIMEOUT: time limit ...``
OUT_OF_MEMORY   none                                        ``slurm OUT_OF_MEMORY: ...``
NODE_FAIL       none                                        ``slurm NODE_FAIL: node ... failed``
PREEMPTED       none                                        ``slurm PREEMPTED: ...``
BOOT_FAIL       none                                        ``slurm BOOT_FAIL: ...``
DEADLINE        none                                        ``slurm DEADLINE: ...``
others          none                                        ``slurm <STATE>``
==============  ==========================================  ==================================

A ``FAILED`` job whose batch script did not find its command (exit code 127) is given the
reason ``command not found: NAME`` by the watching, one whose command was found but cannot be
executed (126) ``cannot start: FILE: WHY``, from the job's ``.err``
(:func:`~daemon.executors.slurm.joblogs.cannot_run`).

With no exit code and no signal the service records ``failed`` with the reason (or
``cancelled`` when the owner asked), so the Slurm state is never lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from daemon.accounting.methods import SLURM_SACCT
from daemon.executors.base import ExitStatus

__all__ = ["ACTIVE", "WAITING", "ended_status", "is_ended"]

WAITING: Final = frozenset(
    {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
)
ACTIVE: Final = frozenset(
    {
        "RUNNING",
        "COMPLETING",
        "CONFIGURING",
        "SUSPENDED",
        "STOPPED",
        "SIGNALING",
        "STAGE_OUT",
        "RESIZING",
    }
)
_WHY: Final = {
    "TIMEOUT": "the job reached its time limit",
    "OUT_OF_MEMORY": "the job ran out of memory",
    "NODE_FAIL": "a node of the job failed",
    "PREEMPTED": "the job was preempted by a higher-priority job",
    "BOOT_FAIL": "a node of the job failed to boot",
    "DEADLINE": "the job reached its Slurm deadline",
    "REVOKED": "a sibling cluster started the job",
}


def is_ended(state: str) -> bool:
    """Whether ``state`` (long form, e.g. ``COMPLETED``) is final."""
    return bool(state) and state not in WAITING and state not in ACTIVE


def ended_status(
    job_id: str,
    state: str,
    *,
    exit_code: int | None,
    signal: int | None,
    finished_at: datetime,
    started_at: datetime | None = None,
    by_uid: int | None = None,
    nodes: str = "",
    energy_j: float | None = None,
    end_to_second: bool = False,
    owner: int | None = None,
) -> ExitStatus:
    """The :class:`ExitStatus` of carbond job ``job_id`` whose Slurm job ended in ``state``;
    ``energy_j`` (J, from ``sacct``) is flagged ``slurm-sacct``; ``end_to_second``:
    ``finished_at`` is sacct's End, cut to the second. ``CANCELLED`` by ``owner`` (the job's
    uid; None: not known) is ``cancelled_by_owner``."""
    reason = f"slurm {state}"
    if state == "CANCELLED" and by_uid is not None:
        reason += f" by uid {by_uid}"
    if state in _WHY:
        reason += f": {_WHY[state]}" + (f" ({nodes})" if nodes and state == "NODE_FAIL" else "")
    code, sig = None, None
    if state in {"COMPLETED", "FAILED"}:
        code, sig = (exit_code if signal is None else None), signal
        if state == "FAILED" and code == 0:  # failed before its script ran (e.g. bad chdir)
            code = None
    return ExitStatus(
        job_id,
        finished_at,
        code,
        sig,
        reason,
        energy_j=energy_j,
        energy_method=SLURM_SACCT if energy_j is not None else None,
        started_at=started_at,
        end_to_second=end_to_second,
        cancelled_by_owner=state == "CANCELLED" and owner is not None and by_uid == owner,
    )
