"""One job as a row of ``carbond jobs`` and the head of ``carbond status``: its latest decision,
its outcome and the saving against the run-now counterfactual stored at submission, as the run
turned out (the outcome's ``run_now_total_g``, :mod:`daemon.accounting.finished`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from daemon.cli.unread import UnreadJob
from daemon.ledger import JobRecord, Ledger
from daemon.reports.lines import user_name  # cached: `jobs --json` asks once per row
from daemon.states import ACTIVE_STATES

__all__ = ["SUBMITTED", "deadline_missed", "job_row", "short_reason", "unread_row"]

SUBMITTED = "submitted"  # a job line the daemon has not read yet (as `carbond status` says)
# the states a job ends in without doing its work: their transition's reason says why
_ENDED_SHORT = frozenset({"failed", "cancelled", "expired"})
_REASON_CHARS = 48  # of a reason in the `carbond jobs` table (--json: all of it)


def job_row(ledger: Ledger, job: JobRecord, now: datetime) -> dict[str, Any]:
    """``job`` as a row at ``now``: ids, owner, times, whether it missed its deadline, where
    it runs, expected and measured grams; ``run_now_total_g`` is the counterfactual as stored
    at submission, ``run_now_realised_g`` the same as the run turned out (rescaled and
    re-priced: the figure ``saved_g`` subtracts the measured grams from); ``reason``: why a
    failed, cancelled or expired job ended so (its last transition's: the exit code or
    signal, an OOM kill, a refused fork, a Slurm failure, who cancelled it), else None."""
    decision = ledger.latest_decision(job.job_id)
    outcome = ledger.outcome(job.job_id) or {}
    measured, run_now = outcome.get("total_g"), outcome.get("run_now_total_g")
    stored = ledger.counterfactual(job.job_id)  # the start it could have had at submission
    return {
        "job_id": job.job_id,
        "name": job.name,
        "state": job.state,
        "user": user_name(job.uid),
        "uid": job.uid,
        "submitted_at": job.submitted_at.isoformat(),
        "deadline": job.deadline.isoformat() if job.deadline else None,
        "deadline_missed": deadline_missed(job, outcome.get("finished_at"), now),
        "region": decision.region if decision else None,
        "gpu": decision.gpu if decision else None,
        "planned_start": decision.planned_start.isoformat()
        if decision and decision.planned_start
        else None,
        "expected_total_g": decision.expected_total_g if decision else None,
        "run_now_total_g": stored["total_g"]
        if stored
        else (decision.run_now_total_g if decision else None),
        "measured_total_g": measured,
        "energy_method": outcome.get("energy_method"),
        "run_now_realised_g": run_now,
        "saved_g": run_now - measured if run_now is not None and measured is not None else None,
        "reason": _end_reason(ledger, job),
    }


def _end_reason(ledger: Ledger, job: JobRecord) -> str | None:
    if job.state not in _ENDED_SHORT:
        return None
    ended = [t for t in ledger.transitions(job.job_id) if t.to_state == job.state]
    return ended[-1].reason if ended else None


def short_reason(reason: str | None) -> str | None:
    """``reason`` cut to fit a table cell, ``...`` marking the cut (the whole: ``--json``)."""
    if reason is None or len(reason) <= _REASON_CHARS:
        return reason
    return reason[: _REASON_CHARS - 3].rstrip() + "..."


def unread_row(job: UnreadJob, now: datetime) -> dict[str, Any]:
    """A job line the daemon has not read yet as :func:`job_row`'s row (state ``submitted``,
    nothing planned or measured; ``submitted_at`` unknown until the daemon reads it), with
    its ``queue_file``, its ``line_no`` there, whether a cancel line for it follows there,
    whether its line still waits for its newline (``newline_pending``) and why the daemon
    holds its file unread for now (``held``: its owner's passwd lookup fails; else None);
    ``job_id`` None for a line without one (the daemon gives it a new id when it reads it)."""
    request = job.request
    return {
        "job_id": request.job_id,
        "name": request.name,
        "state": SUBMITTED,
        "user": user_name(job.uid),
        "uid": job.uid,
        "submitted_at": None,
        "deadline": request.deadline.isoformat() if request.deadline else None,
        "deadline_missed": None if request.deadline is None else request.deadline < now,
        "region": None,
        "gpu": None,
        "planned_start": None,
        "expected_total_g": None,
        "run_now_total_g": None,
        "measured_total_g": None,
        "energy_method": None,
        "run_now_realised_g": None,
        "saved_g": None,
        "reason": None,
        "queue_file": str(job.queue_file),
        "line_no": job.line_no,
        "cancel_requested": job.cancel,
        "newline_pending": not job.ended,
        "held": job.held,
    }


def deadline_missed(job: JobRecord, finished_at: str | None, now: datetime) -> bool | None:
    """Whether ``job`` missed its deadline (None: it has none): expired unstarted, ended after
    it (``finished_at``: its outcome's end), or still waiting or running at ``now`` past it (a
    running job runs on past its deadline; ``daemon.service.overdue``)."""
    if job.deadline is None:
        return None
    if job.state == "expired":
        return True
    if job.state in ACTIVE_STATES:
        return job.deadline < now
    return finished_at is not None and datetime.fromisoformat(finished_at) > job.deadline
