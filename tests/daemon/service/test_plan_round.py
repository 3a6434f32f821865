"""The service's side of a planning round: the waiting jobs' specs, a job whose spec no longer
holds, and the decisions recorded once each, round after round."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from daemon.queue.job_request import JobRequest
from daemon.queue.line import parse_line
from daemon.testing import FakeClock, RecordingExecutor
from policies import Decision, JobSpec, PlannedStart, Policy
from tests.daemon.helpers import append, job_line, make_service


def test_a_job_whose_spec_no_longer_holds_fails_and_the_others_are_planned(
    tmp_path: Path,
) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, policy="carbon-window")
    service.start(clock())
    request = parse_line(job_line(id="gone").strip(), clock())
    assert isinstance(request, JobRequest)
    with service.ledger.transaction():  # as if the catalog lost its model after ingestion
        service.ledger.add_job(replace(request, model="gpt-17"), 1000, 1000, "q:1", clock())
    append(service.queue.path, job_line(id="ok", deadline="+8h"))
    service.tick(clock())
    assert service.ledger.job("gone").state == "failed"
    assert service.ledger.transitions("gone")[-1].reason.startswith("invalid job: ")
    assert service.ledger.latest_decision("gone") is None  # never planned
    assert service.ledger.latest_decision("ok") is not None


def test_a_held_plan_is_recorded_once_per_change_over_many_rounds(tmp_path: Path) -> None:
    """Every stored row differs from the job's row before it (action, reason, devices or
    start), and every round's decision equals the job's latest row."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, policy="carbon-window")
    service.start(clock())
    append(service.queue.path, "".join(job_line(id=f"j{k}", deadline="+12h") for k in range(6)))
    held = 0
    for _ in range(12):
        decisions = {d.job_id: d for d in service.plan(clock()) if d.action == "hold"}
        held += len(decisions)
        for job_id, decision in decisions.items():
            latest = service.ledger.latest_decision(job_id)
            assert latest is not None and decision.chosen is not None
            assert (latest.reason, latest.planned_start) == (decision.reason, decision.chosen.start)
        clock.advance(600)
        service.tick(clock())
    rows = service.ledger.rows("decisions")
    assert held > len(rows) > 6  # some plans moved, many repeated
    last: dict[str, tuple[object, ...]] = {}
    for row in rows:
        key = (row["action"], row["reason"], row["device_ids_json"], row["planned_start"])
        assert last.get(row["job_id"]) != key
        last[row["job_id"]] = key


class _Spy:
    """The service's policy, recording the specs it is given."""

    def __init__(self, policy: Policy) -> None:
        self.policy, self.name = policy, policy.name
        self.seen: list[dict[str, JobSpec]] = []

    def plan(self, now: datetime, jobs: Sequence[JobSpec], *args: Any) -> list[Decision]:
        self.seen.append({job.job_id: job for job in jobs})
        return self.policy.plan(now, jobs, *args)


def _plan_of(decision: Decision) -> PlannedStart:
    assert decision.chosen is not None
    return PlannedStart(decision.chosen.region, decision.chosen.gpu, decision.chosen.start)


def test_held_jobs_carry_their_plans_into_the_next_round_and_across_a_restart(
    tmp_path: Path,
) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, policy="carbon-window")
    spy = service.policy = _Spy(service.policy)  # type: ignore[assignment]
    service.start(clock())
    append(service.queue.path, "".join(job_line(id=f"j{k}", deadline="+12h") for k in range(6)))
    service.tick(clock())
    held = {d.job_id: d for d in service.plan(clock()) if d.action == "hold"}
    assert held and all(spec.planned is None for spec in spy.seen[0].values())
    assert {k: spy.seen[1][k].planned for k in held} == {k: _plan_of(d) for k, d in held.items()}
    last = {d.job_id: d for d in service.plan(clock())}
    service.ledger.close()

    restarted = make_service(tmp_path, executor, policy="carbon-window")
    spy = restarted.policy = _Spy(restarted.policy)  # type: ignore[assignment]
    restarted.plan(clock())
    plans = {k: spec.planned for k, spec in spy.seen[0].items()}
    assert plans == {k: _plan_of(d) if d.action == "hold" else None for k, d in last.items()}


def test_a_reloaded_service_reads_the_plans_of_the_jobs_it_did_not_add_together(
    tmp_path: Path,
) -> None:
    """After a restart and then a reload (a new service on the same ledger), the planned jobs a
    daemon before the restart added (not kept by this connection) carry their stored plans
    into the reload's first round, read in one query, not one per job."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    first = make_service(tmp_path, executor, policy="carbon-window")
    first.start(clock())
    append(first.queue.path, "".join(job_line(id=f"j{k}", deadline="+12h") for k in range(6)))
    first.tick(clock())
    first.ledger.close()
    restarted = make_service(tmp_path, executor, policy="carbon-window")
    last = {d.job_id: d for d in restarted.plan(clock())}
    assert any(d.action == "hold" for d in last.values())

    reloaded = make_service(tmp_path, executor, policy="carbon-window", ledger=restarted.ledger)
    reloaded.take_over_runs(restarted)
    spy = reloaded.policy = _Spy(reloaded.policy)  # type: ignore[assignment]
    statements: list[str] = []
    reloaded.ledger._db.set_trace_callback(statements.append)
    try:
        reloaded.plan(clock())
    finally:
        reloaded.ledger._db.set_trace_callback(None)
    plans = {k: spec.planned for k, spec in spy.seen[0].items()}
    assert plans == {k: _plan_of(d) if d.action == "hold" else None for k, d in last.items()}
    one_by_one = [s for s in statements if "FROM decisions WHERE job_id =" in s]
    assert not one_by_one, one_by_one
    assert sum("JOIN decisions" in s for s in statements) == 1
