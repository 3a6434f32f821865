"""A held job counts in the metrics as any job does: its grams once when its executor (Slurm)
starts it on its own at its planned start (no ``start`` decision is ever recorded for it),
and its end when its executor ended it before it started (a ``scancel`` in Slurm)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.executors.base import EndedUnstarted, Held, LaunchSpec, RunHandle
from daemon.executors.held import HeldJobs
from daemon.ledger import Ledger
from daemon.metrics.prometheus import Metrics
from daemon.queue.job_request import JobRequest
from daemon.queue.line import parse_line
from daemon.testing import FakeClock
from policies import Alternative, Decision
from tests.daemon.helpers import job_line

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=2)
PLAN = Alternative(("qc/0",), "qc", "T4", LATER, 60.0, 3.6e5, 30.0, 3.0, 1.0)  # 4 g
RUN_NOW = Alternative(("qc/0",), "qc", "T4", T0, 60.0, 3.6e5, 90.0, 9.0, 1.0)  # 10 g


class _Watching:
    """A reserving executor whose scheduler answers ``ends`` for the held jobs it is asked
    about: started on its own (:class:`Held` with a start) or ended unstarted."""

    name = "fake"

    def __init__(self) -> None:
        self.ends: dict[str, Held | EndedUnstarted] = {}

    def hold(
        self, spec: LaunchSpec, start: datetime, token: str, now: datetime, *, new: bool = False
    ) -> Held:
        raise AssertionError("not handed over here")

    def release(
        self, spec: LaunchSpec, token: str, now: datetime, *, new: bool = False
    ) -> RunHandle:
        raise AssertionError("not released here")

    def withdraw(self, job_id: str, token: str, now: datetime, *, uid: int) -> Held | None:
        return None

    def ended_held(
        self, held: Sequence[RunHandle], now: datetime
    ) -> dict[str, Held | EndedUnstarted]:
        asked = {h.job_id for h in held}
        return {job_id: end for job_id, end in self.ends.items() if job_id in asked}


def _held_job(
    ledger: Ledger, job_id: str, *, deadline: datetime | None = None, run_now: Alternative = RUN_NOW
) -> None:
    """``job_id`` planned for later on its first decision, a hold, and handed to Slurm."""
    fields = (
        {"id": job_id} if deadline is None else {"id": job_id, "deadline": deadline.isoformat()}
    )
    request = parse_line(job_line(**fields).strip(), T0)
    assert isinstance(request, JobRequest), request
    with ledger.transaction():
        ledger.add_job(request, 1000, 1000, "queue.jsonl:1", T0)
        ledger.transition(job_id, "planned", T0, "planned")
        decision = Decision(job_id, "hold", "hold: planned", "carbon-window", PLAN, run_now)
        ledger.record_decision(decision, T0)
        ledger.add_run(job_id, "fake", ["qc/0"], [0], 60.0, T0)
        ledger.set_run_token(job_id, "t-" + job_id)


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_a_held_job_its_executor_started_adds_its_grams_once(tmp_path: Path) -> None:
    """Slurm started "a" at its planned start: no start decision was recorded for it, so
    neither grams counter ever included it."""
    with Ledger.open(tmp_path / "ledger.db") as ledger, Metrics(clock=FakeClock()) as metrics:
        _held_job(ledger, "a")
        executor = _Watching()
        held = HeldJobs(ledger, {"fake": executor}, metrics)  # type: ignore[dict-item]
        executor.ends["a"] = Held("t-a", started_at=LATER)
        held.watch(LATER + timedelta(seconds=30))
        held.watch(LATER + timedelta(seconds=60))  # answered again: already running

        assert ledger.job("a").state == "running"
        expected = _sample(metrics, "carbond_expected_emissions_grams_total",
                           policy="carbon-window")  # fmt: skip
        run_now = _sample(metrics, "carbond_run_now_emissions_grams_total",
                          policy="carbon-window")  # fmt: skip
        assert expected == pytest.approx(PLAN.total_g)
        assert run_now == pytest.approx(RUN_NOW.total_g)
        # no decision was made: none is counted
        assert _sample(metrics, "carbond_decisions_total", policy="carbon-window",
                       action="start") == 0  # fmt: skip


def test_a_held_job_run_now_would_have_missed_claims_no_saving(tmp_path: Path) -> None:
    """Its run-now copy starts at or after its deadline: its run-now grams are its own
    expected grams, as for a job started by a decision."""
    with Ledger.open(tmp_path / "ledger.db") as ledger, Metrics(clock=FakeClock()) as metrics:
        deadline = T0 + timedelta(minutes=1)
        missed = Alternative(("qc/0",), "qc", "T4", deadline, 60.0, 3.6e5, 90.0, 9.0, 1.0)
        _held_job(ledger, "a", deadline=deadline, run_now=missed)
        executor = _Watching()
        held = HeldJobs(ledger, {"fake": executor}, metrics)  # type: ignore[dict-item]
        executor.ends["a"] = Held("t-a", started_at=LATER)
        held.watch(LATER)
        run_now = _sample(metrics, "carbond_run_now_emissions_grams_total",
                          policy="carbon-window")  # fmt: skip
        assert run_now == pytest.approx(PLAN.total_g)


def test_a_held_job_started_before_adds_no_grams_when_started_again(tmp_path: Path) -> None:
    """A job already started once (Slurm requeued it, it was planned and held again) runs
    once more: its grams were counted at its first start."""
    with Ledger.open(tmp_path / "ledger.db") as ledger, Metrics(clock=FakeClock()) as metrics:
        _held_job(ledger, "a")
        executor = _Watching()
        held = HeldJobs(ledger, {"fake": executor}, metrics)  # type: ignore[dict-item]
        executor.ends["a"] = Held("t-a", started_at=LATER)
        held.watch(LATER)
        with ledger.transaction():  # taken back by Slurm, planned and held again
            ledger.drop_run("a")
            ledger.transition("a", "queued", LATER, "requeued")
            ledger.transition("a", "planned", LATER, "planned")
            ledger.add_run("a", "fake", ["qc/0"], [0], 60.0, LATER)
            ledger.set_run_token("a", "t-a")
        held.watch(LATER + timedelta(minutes=5))
        assert ledger.job("a").state == "running"
        expected = _sample(metrics, "carbond_expected_emissions_grams_total",
                           policy="carbon-window")  # fmt: skip
        assert expected == pytest.approx(PLAN.total_g)


@pytest.mark.parametrize(("by_owner", "state"), [(True, "cancelled"), (False, "failed")])
def test_a_held_job_its_executor_ended_unstarted_counts_as_finished(
    tmp_path: Path, by_owner: bool, state: str
) -> None:
    """Its owner ``scancel``-ed "a" in Slurm before it started: the job is ``cancelled`` in
    the ledger, but carbond_jobs_finished_total did not count it."""
    with Ledger.open(tmp_path / "ledger.db") as ledger, Metrics(clock=FakeClock()) as metrics:
        _held_job(ledger, "a")
        executor = _Watching()
        held = HeldJobs(ledger, {"fake": executor}, metrics)  # type: ignore[dict-item]
        executor.ends["a"] = EndedUnstarted("slurm CANCELLED by uid 1000", by_owner=by_owner)
        held.watch(T0 + timedelta(minutes=1))
        assert ledger.job("a").state == state
        assert _sample(metrics, "carbond_jobs_finished_total", state=state) == 1
        held.ended_unstarted("a", executor.ends["a"], T0 + timedelta(minutes=2))  # ended already
        assert _sample(metrics, "carbond_jobs_finished_total", state=state) == 1


def test_a_start_decision_after_its_executor_started_it_adds_no_grams(tmp_path: Path) -> None:
    """Slurm started held "a" (its grams counted then), then requeued it; carbond queued it
    again and decided to start it: its first ``start`` decision, but not its first start."""
    from types import SimpleNamespace

    from daemon.service.plan_round import _observe

    with Ledger.open(tmp_path / "ledger.db") as ledger, Metrics(clock=FakeClock()) as metrics:
        _held_job(ledger, "a")
        executor = _Watching()
        held = HeldJobs(ledger, {"fake": executor}, metrics)  # type: ignore[dict-item]
        executor.ends["a"] = Held("t-a", started_at=LATER)
        held.watch(LATER)
        start = Decision("a", "start", "start now", "carbon-window", PLAN, RUN_NOW)
        with ledger.transaction():  # Slurm requeued it: queued again, then started
            ledger.drop_run("a")
            ledger.transition("a", "queued", LATER, "requeued")
            ledger.record_decision(start, LATER)
        service = SimpleNamespace(ledger=ledger, metrics=metrics)
        _observe(service, ledger.job("a"), start)  # type: ignore[arg-type]
        expected = _sample(metrics, "carbond_expected_emissions_grams_total",
                           policy="carbon-window")  # fmt: skip
        assert expected == pytest.approx(PLAN.total_g)
        assert _sample(metrics, "carbond_decisions_total", policy="carbon-window",
                       action="start") == 1  # fmt: skip
