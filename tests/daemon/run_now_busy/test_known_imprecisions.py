"""Two imprecisions of the run-now counterfactual (docs/daemon.md, "How close the run-now
counterfactual is"), each as its smallest case through the daemon (a real ledger, the recording
executor, time passed in). The planning round is fixed: the copies (policies/run_now_claims.py)
start at the daemon's rounds, its planning interval handed to the policy (its deadline
compared with that start too). A copy ahead of its held job is a strict xfail: the policies do
not know a held job's future run. A fix turns its test into a failure to notice: then drop
the mark."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from daemon.service import Service
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line, make_service
from tests.daemon.run_now_busy.counterfactuals import CISO_ONLY, carbon_window_service

JOBS = ("j0", "j1", "j2")


def _copy_start(service: Service, job_id: str) -> datetime:
    stored = service.ledger.counterfactual(job_id)
    assert stored is not None
    return datetime.fromisoformat(stored["start"])


def _starts(tmp_path: Path, policy: str) -> Service:
    """Three jobs arriving together on one GPU, the service planning every ``plan_s``."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=True)
    service = make_service(tmp_path / policy, executor, policy=policy, regions=CISO_ONLY)
    plan_s = service.settings.intervals.plan_s
    service.start(clock())
    for i, job_id in enumerate(JOBS):
        append(service.queue.path, job_line(id=job_id, model="llama-3b", requests=97 + 13 * i,
                                            deadline="+12h"))  # fmt: skip
    for _ in range(200):
        service.tick(clock())
        if all(service.ledger.job(j).state == "succeeded" for j in JOBS):
            return service
        clock.advance(plan_s)
    raise AssertionError("the jobs did not finish")


@pytest.mark.parametrize("policy", ["carbon-window", "carbon-lookahead", "lowest-energy"])
def test_each_copy_starts_when_run_now_itself_starts_the_job(tmp_path: Path, policy: str) -> None:
    """carbon-window's copies of three jobs queued on one GPU (and carbon-lookahead's, planned
    by the joint path, and lowest-energy's, which starts every job it can at once) against
    run-now's own runs of the same arrivals, both daemons planning every 30 s: run-now
    starts "j1" and "j2" at the first round after the GPU frees (00:07:30, 00:16:00), and so
    do their copies. Until 2026-12-07 they started the moment it freed (00:07:16.5,
    00:15:31.5), early by 13.5 s then 28.5 s, and by about half a round more for each copy
    after them on that GPU."""
    copies = _starts(tmp_path, policy)
    itself = _starts(tmp_path, "run-now")
    for job_id in JOBS:
        outcome = itself.ledger.outcome(job_id)
        assert outcome is not None
        assert _copy_start(copies, job_id) == datetime.fromisoformat(outcome["started_at"])


@pytest.mark.xfail(
    strict=True,
    reason="a copy ahead of its held job is taken to end at its predicted time",
)
def test_a_copy_waits_for_a_held_jobs_copy_as_long_as_that_job_really_ran(
    tmp_path: Path,
) -> None:
    """carbon-window holds "a" for California's afternoon; its copy runs at once, 00:00 to
    02:30 (predicted). "b" arrives at 02:40: its copy starts then on the same GPU. "a" then
    runs twice its predicted duration, so run-now's copy of it ran to 05:00 (it is held so
    from then on: daemon/run_now_busy/), and "b"'s copy, recorded with its first decision,
    overlaps it by 2 h 20 min."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = carbon_window_service(tmp_path, executor, clock, CISO_ONLY)
    append(service.queue.path, job_line(id="a", model="llama-3b", requests=2000,
                                        deadline="+30h"))  # fmt: skip
    service.tick(clock())
    assert service.ledger.job("a").state == "planned"
    stored = service.ledger.counterfactual("a")
    assert stored is not None
    a_copy = _copy_start(service, "a")
    predicted_end = a_copy + timedelta(seconds=stored["duration_s"])
    while clock() < predicted_end + timedelta(minutes=10):
        service.tick(clock.advance(600))
    append(service.queue.path, job_line(id="b", model="llama-3b", requests=500,
                                        deadline="+30h"))  # fmt: skip
    service.tick(clock())
    for _ in range(200):  # "a" runs twice its prediction, "b" as predicted
        service.tick(clock.advance(600))
        for job_id, k in (("a", 2.0), ("b", 1.0)):
            run = service.ledger.run(job_id)
            if run is not None and service.ledger.job(job_id).state == "running":
                executor.finish(
                    job_id, run.launched_at + timedelta(seconds=k * run.expected_duration_s)
                )
        if all(service.ledger.job(j).state == "succeeded" for j in ("a", "b")):
            break
    outcome = service.ledger.outcome("a")
    assert outcome is not None and outcome["duration_s"] == 2 * outcome["predicted_duration_s"]
    a_copy_end = a_copy + timedelta(seconds=2 * stored["duration_s"])
    assert _copy_start(service, "b") >= a_copy_end


def _due_between_runs(tmp_path: Path, policy: str, x_end: datetime | None) -> Service:
    """ "x", long, arrives first on the one GPU; "a", short, one round later, due ``x_end``
    plus half the way to the first round after it (``x_end``: "x"'s copy's end, None: only
    "x" arrives); "b" a round after "a". The service plans every ``plan_s`` from 00:00."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=True)
    service = make_service(tmp_path / policy, executor, policy=policy, regions=CISO_ONLY)
    plan_s = timedelta(seconds=service.settings.intervals.plan_s)
    service.start(clock())
    append(service.queue.path, job_line(id="x", model="llama-3b", requests=1990,
                                        deadline="+36h"))  # fmt: skip
    service.tick(clock())
    if x_end is None:
        return service
    first_round_after = clock() - ((clock() - x_end) // plan_s) * plan_s
    assert first_round_after > x_end  # "x"'s end is between two rounds
    due = x_end + (first_round_after - x_end) / 2
    for job_id, extra in (("a", {"deadline": due.isoformat()}), ("b", {"deadline": "+12h"})):
        append(service.queue.path, job_line(id=job_id, **extra))
        service.tick(clock.advance(plan_s.total_seconds()))
    while clock() <= first_round_after + 2 * plan_s:
        service.tick(clock.advance(plan_s.total_seconds()))
    return service


def test_a_copy_that_would_start_past_its_deadline_at_run_nows_round_is_missed(
    tmp_path: Path,
) -> None:
    """ "a" is due between the end of "x"'s copy and the first round after it: run-now,
    planning only at rounds, finds its deadline passed and expires it, so carbon-window's
    copy of "a" counts as missed by run-now (no saving claimed: ``run_now_missed``) and
    holds no GPU: "b"'s copy starts when run-now starts "b", at that round. Its copy used to
    start at the end of "x"'s to the microsecond, before the deadline: run, not missed."""
    probe = _due_between_runs(tmp_path / "probe", "carbon-window", None)
    stored = probe.ledger.counterfactual("x")
    assert stored is not None
    x_end = _copy_start(probe, "x") + timedelta(seconds=stored["duration_s"])
    copies = _due_between_runs(tmp_path, "carbon-window", x_end)
    itself = _due_between_runs(tmp_path, "run-now", x_end)
    assert itself.ledger.job("a").state == "expired"
    assert copies.ledger.job("a").state == "succeeded"
    assert copies.ledger.run_now_missed() == 1
    b_outcome = itself.ledger.outcome("b")
    assert b_outcome is not None
    assert _copy_start(copies, "b") == datetime.fromisoformat(b_outcome["started_at"])
