"""How runs end, as the service records them: final states, reasons, the outcome row's
predicted side, and the "never started" answer of a recovering executor. Pure functions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from daemon.executors.base import ExitStatus, NotStarted, RunHandle
from daemon.isotime import isoformat
from daemon.ledger import DecisionRecord, RunRecord

__all__ = [
    "NEVER_STARTED_PREFIX",
    "final_state",
    "never_started",
    "predicted_outcome",
    "requester",
    "run_handle",
]

NEVER_STARTED_PREFIX = "never started"


def never_started(item: RunHandle | ExitStatus, tokenless: set[str]) -> bool:
    """A :class:`NotStarted` answer, or (for executors that predate it) an unrecovered status
    whose reason starts with ``never started`` for a run whose token was never recorded."""
    if isinstance(item, NotStarted):
        return True
    return (
        isinstance(item, ExitStatus)
        and item.job_id in tokenless
        and item.exit_code is None
        and item.signal is None
        and item.reason.startswith(NEVER_STARTED_PREFIX)
    )


def run_handle(run: RunRecord) -> RunHandle:
    """The executor's handle of a recorded run (empty token: the launch was not confirmed)."""
    started = run.started_at or run.launched_at
    return RunHandle(run.job_id, run.executor, run.token or "", started, run.deadline, run.uid,
                     gpus=len(run.device_ids))  # fmt: skip


def requester(uid: int | None) -> str:
    """Who asked to cancel a job, for its reason: ``uid`` from
    :meth:`~daemon.ledger.Ledger.cancel_requester` (None: its owner)."""
    if uid is None:
        return "its owner"
    return "root" if uid == 0 else f"uid {uid}"


def final_state(
    status: ExitStatus,
    *,
    cancel_requested_at: datetime | None,
    cancel_sent_at: datetime | None = None,
    cancelled_by: str = "its owner",
) -> tuple[str, str]:
    """``(state, reason)`` of a run that ended with ``status``.

    Exit 0: ``succeeded``, unless the owner's cancel was sent to the run (at
    ``cancel_sent_at``) before it ended: a job that traps SIGTERM and exits 0 was still
    stopped early (as Slurm records a ``scancel``), so ``cancelled``. A run that ran to its end
    before the cancel reached it (the request was read, but the run ended before the next
    reconcile sent it, or while the daemon was down) did all its work: ``succeeded``.
    Otherwise: ``cancelled`` when its owner asked (at ``cancel_requested_at``) before it ended,
    or when the owner stopped it in the executor's scheduler (``cancelled_by_owner``: their own
    ``scancel``), else ``failed`` with the exit code or signal (also a run that failed on its
    own before the owner's cancel request was read). Both comparisons are exact (the daemon's
    times and a local run's end come from the same clock, to the microsecond), but for an end
    cut to the whole second (``status.end_to_second``: sacct's End), against which a time in
    that second counts as before it (it may be). A cancel's reason names ``cancelled_by``
    (:func:`requester`: root may cancel any job)."""
    if status.succeeded:
        if cancel_sent_at is not None and _not_after(cancel_sent_at, status):
            return "cancelled", f"cancelled by {cancelled_by} while running (it exited 0)"
        return "succeeded", "exit code 0"
    if cancel_requested_at is not None and _not_after(cancel_requested_at, status):
        return "cancelled", f"cancelled by {cancelled_by} while running"
    if status.cancelled_by_owner:  # e.g. their own scancel of the Slurm job
        return "cancelled", f"cancelled by its owner in its executor ({status.reason})"
    return "failed", _failure(status)


_CANNOT_RUN = frozenset({126, 127})
"""The exit codes of a command that could not be executed (126) or was not found (127): the
wrapper's (:mod:`daemon.executors.wrapper`) and the shell's convention."""


def _failure(status: ExitStatus) -> str:
    """The reason of a run that failed: its exit code, signal, or the executor's words (also
    for a job its executor refused as submitted: ``not_runnable``). An exit code of 126 or
    127 keeps the executor's words after it (``exit code 127: command not found: vllm``):
    the code alone does not say which command. The OOM killer's part, where the executor saw
    it (``out_of_memory``), follows (``killed by signal 9; out of memory: ...``): a SIGKILL
    alone does not say who sent it."""
    failure = _failure_alone(status)
    return f"{failure}; {status.out_of_memory}" if status.out_of_memory else failure


def _failure_alone(status: ExitStatus) -> str:
    if status.not_runnable and status.reason:
        return status.reason
    if status.exit_code is not None:
        if status.exit_code in _CANNOT_RUN and status.reason:
            return f"exit code {status.exit_code}: {status.reason}"
        return f"exit code {status.exit_code}"
    if status.signal is not None:
        return f"killed by signal {status.signal}"
    return status.reason or "outcome unknown"


def _not_after(at: datetime, status: ExitStatus) -> bool:
    """Whether ``at`` may be before ``status``'s end, at the precision of its end time."""
    if status.end_to_second:
        at = at - timedelta(microseconds=at.microsecond)
    return at <= status.finished_at


def predicted_outcome(
    started: datetime,
    run: RunRecord,
    decision: DecisionRecord,
    status: ExitStatus,
    pue: float | None,
) -> dict[str, Any]:
    """The ``outcomes`` columns known without measurement: times (``started``: when the run
    really started), GPUs, what was predicted at dispatch and the run-now counterfactual.
    Measured columns stay NULL for the NVML part."""
    return {
        "started_at": isoformat(started),
        "finished_at": isoformat(status.finished_at),
        "duration_s": (status.finished_at - started).total_seconds(),
        "gpus": status.gpus or len(run.device_ids),
        "pue": pue,
        "predicted_energy_j": decision.expected_energy_j,
        "predicted_duration_s": decision.expected_duration_s,
        "predicted_intensity_g_per_kwh": decision.expected_intensity_g_per_kwh,
        "predicted_total_g": decision.expected_total_g,
        "run_now_total_g": decision.run_now_total_g,
    }
