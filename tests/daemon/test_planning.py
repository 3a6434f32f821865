"""Recording a round's decisions: a changed plan is stored and is what the ledger shows; a
repeated one (an equal decision, or the very object recorded) is not stored again; each
stored decision is logged once, unless the level filters it."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from daemon.ledger import JobRecord, Ledger
from daemon.logs import configure_logging
from daemon.planning import (
    WAITING_FOR_DISCOVERY,
    Seen,
    record_decisions,
    request_spec,
    waiting_for_capacity,
    with_plan,
)
from daemon.queue.job_request import JobRequest
from daemon.queue.line import parse_line
from daemon.states import InvalidTransitionError
from policies import Alternative, Decision, Device, PlannedStart
from policies.candidates import unfit_reason
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.helpers import job_line

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def _job(ledger: Ledger, job_id: str) -> JobRecord:
    request = parse_line(job_line(id=job_id).strip(), NOW)
    assert isinstance(request, JobRequest)
    with ledger.transaction():
        ledger.add_job(request, 1000, 1000, "queue.jsonl:1", NOW)
    return ledger.job(job_id)


def _hold(job_id: str, start_min: int, reason: str = "") -> Decision:
    start = NOW + timedelta(minutes=start_min)
    plan = Alternative(("qc/0",), "qc", "T4", start, 60.0, 3.6e5, 30.0, 3.0, 1.0)
    why = reason or f"hold: plan T4 in qc at {start.isoformat(timespec='minutes')}"
    return Decision(job_id, "hold", why, "carbon-window", plan)


@pytest.mark.parametrize("remembered", [True, False])  # the service's memory, or the ledger's
def test_a_moved_plan_is_stored_and_shown_a_repeated_one_is_not(
    ledger: Ledger, remembered: bool
) -> None:
    job = _job(ledger, "j")
    seen: Seen | None = {} if remembered else None
    moved = "hold: the reason's figures moved"
    first = _hold("j", 60)  # handed in again as the same object (a policy repeating it)
    rounds = [(first, True), (first, False), (_hold("j", 60), False), (_hold("j", 75), True),
              (first, True), (_hold("j", 60), False), (_hold("j", 60, moved), True)]  # fmt: skip
    for k, (decision, stored) in enumerate(rounds):
        at = NOW + timedelta(minutes=k)
        assert record_decisions(ledger, [(ledger.job("j"), decision)], at, seen) == [stored]
        latest = ledger.latest_decision("j")
        assert latest is not None and decision.chosen is not None
        assert latest.planned_start == decision.chosen.start  # what `carbond jobs status` shows
        assert latest.reason == decision.reason
    assert job.state == "queued" and ledger.job("j").state == "planned"


def _waiting(job_id: str, at: datetime, region: str = "qc") -> Decision:
    """A hold planned *now* (``at``): the job waits for its pool's devices, as the planner's
    "planned now, waiting for a free GPU" (and the rescue path's) says."""
    plan = Alternative((f"{region}/0",), region, "T4", at, 60.0, 3.6e5, 30.0, 3.0, 1.0)
    why = f"hold: planned now on T4 in {region}, waiting for a free GPU"
    return Decision(job_id, "hold", why, "carbon-window", plan)


@pytest.mark.parametrize("remembered", [True, False])  # the service's memory, or the ledger's
def test_a_job_waiting_now_for_devices_is_stored_once_not_every_round(
    ledger: Ledger, remembered: bool
) -> None:
    """Its planned start is each round's *now*; that alone is no new decision (in an
    overloaded replay, 4 GPUs and 1,500 jobs, such holds were 119,671 of 231,570 stored rows)."""
    _job(ledger, "j")
    seen: Seen | None = {} if remembered else None
    rounds = [(_waiting("j", NOW), True)] + [
        (_waiting("j", NOW + timedelta(minutes=k)), False) for k in range(1, 6)
    ]
    rounds += [(_waiting("j", NOW + timedelta(minutes=6), "ca"), True),  # another pool
               (_hold("j", 60), True),  # a plan for later
               (_waiting("j", NOW + timedelta(minutes=8)), True)]  # fmt: skip
    for k, (decision, stored) in enumerate(rounds):
        at = NOW + timedelta(minutes=k)
        assert record_decisions(ledger, [(ledger.job("j"), decision)], at, seen) == [stored], k
    latest = ledger.latest_decision("j")
    assert latest is not None and latest.planned_start == NOW + timedelta(minutes=8)


@pytest.mark.usefixtures("restore_logging")
def test_each_stored_decision_is_logged_once(ledger: Ledger) -> None:
    jobs = [_job(ledger, name) for name in "ab"]
    seen: Seen = {}
    with capture_logs() as events:
        record_decisions(ledger, [(jobs[0], _hold("a", 60)), (jobs[1], _hold("b", 30))], NOW, seen)
        again = [(ledger.job("a"), _hold("a", 90)), (ledger.job("b"), _hold("b", 30))]
        record_decisions(ledger, again, NOW, seen)
    assert [(e["event"], e["job_id"]) for e in events] == [
        ("job_decision", "a"), ("job_decision", "b"), ("job_decision", "a")
    ]  # fmt: skip


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(("level", "logged"), [("INFO", True), ("WARNING", False)])
def test_decisions_are_logged_at_info_only(
    ledger: Ledger, capsys: pytest.CaptureFixture[str], level: str, logged: bool
) -> None:
    configure_logging(level=level, json=True)
    job = _job(ledger, "a")
    assert record_decisions(ledger, [(job, _hold("a", 60))], NOW, {}) == [True]
    events = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
    assert events == (["job_decision"] if logged else [])
    assert ledger.latest_decision("a") is not None  # stored either way


def test_a_round_whose_transition_fails_stores_none_of_its_decisions(ledger: Ledger) -> None:
    jobs = [_job(ledger, name) for name in "ab"]
    with ledger.transaction():  # b ends between the read and the round: it cannot be rejected
        ledger.transition("b", "running", NOW, "dispatched")
        ledger.transition("b", "succeeded", NOW, "exit 0")
    seen: Seen = {}
    reject = Decision("b", "reject", "fits nowhere", "carbon-window")
    with pytest.raises(InvalidTransitionError):
        record_decisions(ledger, [(jobs[0], _hold("a", 60)), (jobs[1], reject)], NOW, seen)
    assert ledger.latest_decision("a") is None and ledger.latest_decision("b") is None
    assert ledger.job("a").state == "queued" and seen == {}
    assert record_decisions(ledger, [(ledger.job("a"), _hold("a", 60))], NOW, seen) == [True]
    assert ledger.job("a").state == "planned"


def test_a_new_plan_keeps_every_other_field_of_the_spec() -> None:
    request = parse_line(job_line(id="j", deadline="2024-06-02T00:00:00Z").strip(), NOW)
    assert isinstance(request, JobRequest)
    spec = request_spec(request, "j", NOW, NOW + timedelta(days=1))
    spec = dataclasses.replace(spec, regions=("qc",), gpu_types=("T4",), priority=3,
                               min_gpu_memory_gb=12.0)  # fmt: skip
    held = with_plan(spec, _hold("j", 60))
    assert held.planned == PlannedStart("qc", "T4", NOW + timedelta(minutes=60))
    for field in dataclasses.fields(spec):  # every field as given, the plan aside
        if field.name != "planned":
            assert getattr(held, field.name) is getattr(spec, field.name), field.name
    assert with_plan(held, _hold("j", 60)) is held  # the same cell: the same spec
    started = Decision("j", "start", "start now", "carbon-window", _hold("j", 0).chosen)
    assert with_plan(held, started) == dataclasses.replace(held, planned=None)
    assert with_plan(held, started).planned is None


@pytest.mark.parametrize(
    ("regions", "min_memory_gb", "undiscovered", "action"),
    [
        ((), 0.0, (), "reject"),  # nothing to wait for: no GPU could ever run it
        ((), 0.0, ("slurm-qc",), "hold"),  # may run in the region not discovered yet
        ((), 100.0, ("slurm-qc",), "hold"),  # too large for T4s, but qc's GPUs are unknown
        (("local",), 100.0, ("slurm-qc",), "reject"),  # only the known region, too small
        (("slurm-qc",), 0.0, ("slurm-qc",), "hold"),
    ],
)
def test_a_job_that_may_run_in_an_undiscovered_region_waits_instead_of_failing(
    regions: tuple[str, ...], min_memory_gb: float, undiscovered: tuple[str, ...], action: str
) -> None:
    request = parse_line(job_line(id="j").strip(), NOW)
    assert isinstance(request, JobRequest)
    spec = dataclasses.replace(request_spec(request, "j", NOW, None), regions=regions,
                               min_gpu_memory_gb=min_memory_gb)  # fmt: skip
    t4 = Device("local/0", "local", "CA-QC", DEFAULT_GPU_CATALOG.get("T4"))
    devices = [t4] if min_memory_gb else []
    rejected = Decision("j", "reject", unfit_reason(spec, devices), "carbon-window")
    [decision] = waiting_for_capacity([rejected], {"j": spec}, devices, undiscovered)
    assert decision.action == action
    if action == "hold":
        assert decision.reason.startswith(f"{WAITING_FOR_DISCOVERY} (slurm-qc; fits no")
