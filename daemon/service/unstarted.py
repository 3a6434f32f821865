"""Jobs that end, or go back to the queue, without having run.

A waiting job cancelled or past its deadline is ended before planning (:func:`settle`), a job
whose spec is invalid or that cannot be dispatched fails (:func:`fail`), and a run that never
started (its launch unconfirmed: the daemon died, or its executor did not answer) is queued
again (:func:`requeue`), or expired at once when its deadline has passed. A job handed to a
reserving executor (Slurm) is withdrawn from it first. Each runs under the
:class:`~daemon.service.Service`'s lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from daemon.endings.rules import requester
from daemon.executors.base import ExitStatus
from daemon.ledger import JobRecord
from daemon.run_now_busy import ending_cut

if TYPE_CHECKING:
    from daemon.service.core import Service

__all__ = ["end", "fail", "missed", "requeue", "settle"]

log = structlog.get_logger(__name__)


def requeue(service: Service, status: ExitStatus, now: datetime, why: str = "") -> None:
    """Queue a job whose run never started again; one whose deadline has passed is
    expired in the same transaction (a job taken back at its deadline does not wait a
    round ``queued``)."""
    why = why or "its launch was never confirmed (the daemon died, or its executor did not answer)"
    reason = f"requeued: {why} ({status.reason})"
    ledger = service.ledger
    deadline = ledger.job(status.job_id).deadline
    late = missed(deadline) if deadline is not None and deadline <= now else None
    with ledger.transaction():
        ledger.drop_run(status.job_id)
        ledger.transition(status.job_id, "queued", now, reason)
        if late is not None:
            ledger.transition(status.job_id, "expired", now, late)
    log.warning("job_requeued", job_id=status.job_id, reason=status.reason)
    if late is not None:
        log.info("job_expired", job_id=status.job_id, reason=late)
        # its run-now copy, kept while it ran, runs on as held: let go once it holds nothing
        service._run_now_busy.cut(status.job_id, None)
        service.metrics.observe_outcome(status.job_id, "expired", None)
        service._endings.count_expired()


def settle(service: Service, now: datetime) -> list[JobRecord]:
    """Cancel or expire waiting jobs that asked for it; return the ``policy.plan_window``
    most urgent others (the rest wait for a later round: planning every waiting job each
    round would hold the loop, and so ingestion, for seconds per 10,000 jobs). A job
    that could not be settled now (its executor did not give it back) is not planned
    this round either: it is settled on a later one, never started."""
    ledger = service.ledger
    unsettled = set()
    for job in ledger.waiting_to_settle(now):
        if job.cancel_requested_at is not None:
            by = requester(ledger.cancel_requester(job.job_id))
            state, reason = "cancelled", f"cancelled by {by} before start"
        elif job.deadline is not None and job.deadline <= now:
            state, reason = "expired", missed(job.deadline)
        else:
            continue
        if not end(service, job, state, now, reason):
            unsettled.add(job.job_id)
    waiting = ledger.most_urgent_waiting(service.settings.policy.plan_window)
    return [job for job in waiting if job.job_id not in unsettled] if unsettled else waiting


def end(service: Service, job: JobRecord, state: str, now: datetime, reason: str) -> bool:
    """End a job that did not start; False when its executor did not give it back
    (tried again next round) or had started it (it is running now)."""
    if not service._held.withdraw(job.job_id, now):
        return False
    with service.ledger.transaction():
        service.ledger.transition(job.job_id, state, now, reason)
    log.info("job_" + state, job_id=job.job_id, reason=reason)
    # its run-now copy, cancelled then too; one that expired or failed here runs on, held
    # since its decision (or, waiting across a restart, since the start: RunNowBusy.learn),
    # and is let go once it holds nothing (kept while a run taken back since went on)
    cut = None
    if state == "cancelled":
        cut = ending_cut(state, ended_at=now, cancel_requested_at=job.cancel_requested_at,
                         own_failure=False)  # fmt: skip
    service._run_now_busy.cut(job.job_id, cut)
    service.metrics.observe_outcome(job.job_id, state, None)
    if state == "expired":
        service._endings.count_expired()
    return True


def fail(service: Service, job: JobRecord, now: datetime, reason: str) -> None:
    """End a job that did not start as ``failed`` (its spec invalid, or no executor can
    take it)."""
    end(service, job, "failed", now, reason)


def missed(deadline: datetime) -> str:
    """The reason recorded for a job expired because ``deadline`` passed before it started."""
    return f"deadline {deadline.isoformat()} passed before the job started"
