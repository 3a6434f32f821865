"""The reasons a planned decision gives, worded once for both of the planner's paths: the full
re-plan (``planner._decide``) and the fast path over the kept rows
(:mod:`policies.round_decisions`), whose decisions must read the same."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from policies.types import Alternative, JobSpec

__all__ = ["hold_reason", "latest_text", "saving", "start_reason", "waiting_reason"]

CHEAPEST = "cheapest feasible (device, region, start) over the horizon"
LATE_HOLD = "planned past its latest safe start"
LATE_HOLD_THEN = "starts on the first suitable GPU that frees"
NO_DEADLINE_HOLD = "no deadline, so no later start is planned"
CLOSE_HOLD = "its deadline is too close to wait for a cheaper start"


def saving(plan: Alternative, run_now: Alternative | None) -> str:
    """``" (N% below run-now)"``, ``" (N% above run-now)"`` for a plan that costs more, or
    nothing without a run-now counterfactual above 0 g, or for a share that rounds to 0%
    (it read "(0% above run-now)": no figure worth quoting, and a sign hard to read)."""
    if run_now is not None and run_now.total_g > 0:
        share = f"{1 - plan.total_g / run_now.total_g:.0%}"
        if share in ("0%", "-0%"):
            return ""
        if share.startswith("-"):
            return f" ({share[1:]} above run-now)"
        return f" ({share} below run-now)"
    return ""


def latest_text(anchor: datetime, latest_s: float) -> str:
    """A latest safe start, ``latest_s`` seconds after ``anchor``, as the reasons print it
    (``none``: not finite)."""
    if not math.isfinite(latest_s):
        return "none"
    return (anchor + timedelta(seconds=latest_s)).isoformat(timespec="minutes")


def hold_reason(
    plan: Alternative, start_txt: str, quoted: str, latest_txt: str, job: JobSpec
) -> str:
    """A job held with a plan later than now (``start_txt``: its start to the minute;
    ``quoted``: :func:`saving`; ``latest_txt``: :func:`latest_text`).

    A plan later than the latest safe start (to the minute, as both print) is the rescue's
    (``greedy_reference.rescue``: no free slot before it): the job is planned again every round and
    starts on the first device that frees and still suits it, not at that slot; the reason
    says so, as a start on the rescue path says ``LATE_NOTE``. A job without a deadline has
    no latest safe start (it runs as soon as possible: only the rescue holds it), and one
    whose latest safe start was before it was submitted (a deadline too close for its run,
    margins and guard) never had one to miss: their reasons say that, not a past time."""
    head = f"hold: plan {plan.gpu} in {plan.region} at {start_txt} for {plan.total_g:.3g} g"
    if job.deadline is None:
        return f"{head}{quoted}; {NO_DEADLINE_HOLD}: {LATE_HOLD_THEN}"
    if latest_txt != "none" and start_txt > latest_txt:  # same offset: ISO texts sort in time
        submitted = job.submitted_at.astimezone(plan.start.tzinfo)
        if latest_txt < submitted.isoformat(timespec="minutes"):
            return f"{head}{quoted}; {CLOSE_HOLD}: {LATE_HOLD_THEN}"
        return f"{head}{quoted}; {LATE_HOLD} {latest_txt}: {LATE_HOLD_THEN}"
    return f"{head}{quoted}; latest safe start {latest_txt}"


def waiting_reason(plan: Alternative) -> str:
    """A job planned now that finds too few of its pool's GPUs free."""
    return f"hold: planned now on {plan.gpu} in {plan.region}, waiting for a free GPU"


def start_reason(chosen: Alternative, quoted: str, note: str) -> str:
    """A job started now (``note``: why this cell, when not simply the cheapest)."""
    return (
        f"start now on {chosen.gpu} in {chosen.region}: {chosen.total_g:.3g} g{quoted}; "
        f"{note or CHEAPEST}"
    )
