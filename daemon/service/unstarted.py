"""Jobs that end, or go back to the queue, without having run.

A waiting job cancelled or past its deadline is ended before planning (:func:`settle`), a job
whose spec is invalid or that cannot be dispatched fails (:func:`fail`), and a run that never
started (its launch unconfirmed: the daemon died, or its executor did not answer) is queued
again (:func:`requeue`), or expired at once when its deadline has passed. A job handed to a
reserving executor (Slurm) is withdrawn from it first. Each runs under the
:class:`~daemon.service.Service`'s lock, over the parts of it that the service hands over
(:class:`Unstarted`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog

from daemon.endings.finishing import Endings
from daemon.endings.rules import requester
from daemon.executors.base import ExitStatus
from daemon.executors.held import HeldJobs
from daemon.ledger import JobRecord, Ledger
from daemon.metrics.sink import MetricsSink
from daemon.run_now_busy import RunNowBusy, unstarted_cut

__all__ = ["Unstarted", "end", "fail", "missed", "requeue", "settle"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Unstarted:
    """The service's parts that ending or queueing again a job that did not start touches, as
    they are when the service hands them over (a reload swaps the run-now busy GPUs)."""

    ledger: Ledger
    metrics: MetricsSink
    held: HeldJobs  # the plans handed to a reserving executor: withdrawn first
    endings: Endings  # counts the jobs expired
    run_now_busy: RunNowBusy  # the job's run-now copy, cut or let go


def requeue(parts: Unstarted, status: ExitStatus, now: datetime, why: str = "") -> None:
    """Queue a job whose run never started again; one whose deadline has passed is
    expired in the same transaction (a job taken back at its deadline does not wait a
    round ``queued``)."""
    why = why or "its launch was never confirmed (the daemon died, or its executor did not answer)"
    reason = f"requeued: {why} ({status.reason})"
    ledger = parts.ledger
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
        parts.run_now_busy.cut(status.job_id, None)
        parts.metrics.observe_outcome(status.job_id, "expired", None)
        parts.endings.count_expired()


def settle(parts: Unstarted, now: datetime, plan_window: int) -> list[JobRecord]:
    """Cancel or expire waiting jobs that asked for it; return the ``plan_window`` (the
    settings' ``policy.plan_window``) most urgent others (the rest wait for a later round:
    planning every waiting job each round would hold the loop, and so ingestion, for seconds
    per 10,000 jobs). A job that could not be settled now (its executor did not give it
    back) is not planned this round either: it is settled on a later one, never started."""
    ledger = parts.ledger
    unsettled = set()
    for job in ledger.waiting_to_settle(now):
        if job.cancel_requested_at is not None:
            by = requester(ledger.cancel_requester(job.job_id))
            state, reason = "cancelled", f"cancelled by {by} before start"
        elif job.deadline is not None and job.deadline <= now:
            state, reason = "expired", missed(job.deadline)
        else:
            continue
        if not end(parts, job, state, now, reason):
            unsettled.add(job.job_id)
    waiting = ledger.most_urgent_waiting(plan_window)
    return [job for job in waiting if job.job_id not in unsettled] if unsettled else waiting


def end(parts: Unstarted, job: JobRecord, state: str, now: datetime, reason: str) -> bool:
    """End a job that did not start; False when its executor did not give it back
    (tried again next round) or had started it (it is running now)."""
    if not parts.held.withdraw(job.job_id, now):
        return False
    with parts.ledger.transaction():
        parts.ledger.transition(job.job_id, state, now, reason)
    log.info("job_" + state, job_id=job.job_id, reason=reason)
    # its run-now copy, cancelled then too; one that expired or failed here runs on, held
    # since its decision (or, waiting across a restart, since the start: RunNowBusy.learn),
    # and is let go once it holds nothing (kept while a run taken back since went on); as
    # for a held job its scheduler ended (HeldJobs.ended_unstarted)
    cut = unstarted_cut(state, ended_at=now, cancel_requested_at=job.cancel_requested_at)
    parts.run_now_busy.cut(job.job_id, cut)
    parts.metrics.observe_outcome(job.job_id, state, None)
    if state == "expired":
        parts.endings.count_expired()
    return True


def fail(parts: Unstarted, job: JobRecord, now: datetime, reason: str) -> None:
    """End a job that did not start as ``failed`` (its spec invalid, or no executor can
    take it)."""
    end(parts, job, "failed", now, reason)


def missed(deadline: datetime) -> str:
    """The reason recorded for a job expired because ``deadline`` passed before it started."""
    return f"deadline {deadline.isoformat()} passed before the job started"
