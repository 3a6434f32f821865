"""A job whose run-now counterfactual is its own run (same devices, start and duration) saved
exactly nothing: its run-now grams are its grams, not a rescaled figure a rounding error off
(which `jobs`, `status` and `report` showed as ``-0.00`` g, ``-0%`` and ``-3.553e-15``)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from daemon.accounting.finished import is_the_kept_run, is_the_run
from daemon.cli import main
from daemon.ledger import Ledger, alternative_json
from daemon.settings import RegionSettings
from daemon.testing import FakeClock, RecordingExecutor
from policies import Alternative, Decision
from policies.builtin.run_now import RunNow
from tests.daemon.helpers import append, job_line, job_request, make_service

NOW = datetime(2026, 3, 2, tzinfo=UTC)

MODELS = ("llama-3.2-1b", "llama-2-7b", "llama-3.2-3b", "llama-3.1-8b")


def _jobs_and_report_show_nothing_saved(
    state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``carbond jobs --json`` and ``report --by job --json`` over ``state`` (no config file)
    show exactly 0 saved for every job, and in the report's totals."""
    monkeypatch.setenv("CARBOND_STATE_DIR", str(state))
    monkeypatch.delenv("CARBOND_CONFIG", raising=False)
    monkeypatch.setattr("daemon.settings.DEFAULT_CONFIG_PATH", state / "absent.toml")
    capsys.readouterr()
    assert main(["jobs", "--json"]) == 0
    assert {row["saved_g"] for row in json.loads(capsys.readouterr().out)} == {0.0}
    assert main(["report", "--by", "job", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {row["saved_kg"] for row in report["rows"]} == {0.0}
    assert report["totals"]["saved_kg"] == 0.0


@pytest.mark.parametrize("lag_ms", [0, 250])
def test_jobs_run_where_and_when_run_now_would_have_saved_exactly_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    lag_ms: int,
) -> None:
    """``lag_ms``: as ``carbond run`` does, the launches are stamped by a wall clock that
    much after the round's time (the copies start at the round's time); those runs saved
    -0.0004 g to +0.0002 g, or -1.8e-15 g, each: the launch's lag priced, or rounding."""
    clock, executor = FakeClock(), RecordingExecutor()
    executor.reported_power_w = 187.3  # an executor's energy: a figure not predicted exactly
    service = make_service(tmp_path, executor)  # run-now: each decision is its counterfactual
    if lag_ms:
        service.launch_clock = lambda: clock() + timedelta(milliseconds=lag_ms)
    service.start(clock())
    for i, model in enumerate(MODELS * 3):
        append(service.queue.path, job_line(id=f"j{i}", model=model, requests=37 + 101 * i))
        service.tick(clock())
        clock.advance(1234)
    for _ in range(200):
        if not executor.running():
            break
        service.tick(clock())
        clock.advance(600)
    outcomes = [service.ledger.outcome(f"j{i}") for i in range(len(MODELS) * 3)]
    assert all(o is not None and o["total_g"] is not None for o in outcomes)
    for outcome in outcomes:
        assert outcome is not None
        stored = service.ledger.counterfactual(outcome["job_id"])
        run = service.ledger.run(outcome["job_id"])
        assert stored is not None and run is not None
        started = datetime.fromisoformat(outcome["started_at"])
        decision = service.ledger.latest_decision(outcome["job_id"])
        assert decision is not None and decision.planned_start is not None
        assert started == decision.planned_start + timedelta(milliseconds=lag_ms)
        assert is_the_run(stored, run.device_ids, decision.planned_start,
                          outcome["predicted_duration_s"])  # fmt: skip
        assert outcome["run_now_total_g"] == outcome["total_g"]
    assert service.ledger.grams_totals([])["saved_g"] == 0
    service.ledger.close()

    _jobs_and_report_show_nothing_saved(tmp_path, monkeypatch, capsys)
    assert main(["jobs"]) == 0
    assert "saved 0.00 g" in capsys.readouterr().out


def test_a_counterfactual_elsewhere_or_later_is_not_the_run() -> None:
    start = datetime.fromisoformat("2026-03-02T00:00:00+00:00")
    own = {"device_ids": ["qc/0"], "start": start.isoformat(), "duration_s": 600.0}
    assert is_the_run(own, ("qc/0",), start, 600.0)
    assert not is_the_run(own | {"device_ids": ["qc/1"]}, ("qc/0",), start, 600.0)
    assert not is_the_run(own | {"start": "2026-03-02T00:05:00+00:00"}, ("qc/0",), start, 600.0)
    assert not is_the_run(own | {"duration_s": 900.0}, ("qc/0",), start, 600.0)
    assert not is_the_run({"device_ids": ["qc/0"]}, ("qc/0",), start, 600.0)
    assert not is_the_run(own, ("qc/0",), start, None)


def test_the_kept_counterfactual_is_the_run_exactly_when_its_read_back_json_is() -> None:
    """A run's end compares the counterfactual the ledger kept (not formatted and parsed
    back) with the run: the same answer as the JSON read back, for runs elsewhere, earlier,
    later, in another time zone, naive, or of another predicted duration."""
    start = datetime.fromisoformat("2026-03-02T00:00:00+00:00")
    kept = Alternative(("qc/0",), "qc", "T4", start, 600.0, 1e5, 30.0, 0.8, 0.1)
    other_zone = start.astimezone(timezone(timedelta(hours=-5)))
    starts = [start, start + timedelta(seconds=1), start - timedelta(microseconds=1),
              other_zone, start.replace(tzinfo=None)]  # fmt: skip
    naive = replace(kept, start=start.replace(tzinfo=None))
    for recorded in (kept, naive, replace(kept, device_ids=("qc/0", "qc/1"))):
        for devices in [("qc/0",), ("qc/1",), ("qc/0", "qc/1"), ()]:
            for started in starts:
                for predicted in (600.0, 600, 600.0 + 1e-7, 601.0, None, "600"):
                    read = json.loads(json.dumps(alternative_json(recorded)))
                    assert is_the_kept_run(recorded, devices, started, predicted) == is_the_run(
                        read, devices, started, predicted
                    ), (recorded, devices, started, predicted)


@pytest.mark.parametrize(
    ("start", "kept"),
    [(NOW, True), (NOW.replace(tzinfo=None), True),
     (NOW.astimezone(timezone(timedelta(hours=2))), False)],
)  # fmt: skip
def test_the_ledger_hands_back_the_alternative_only_where_it_compares_as_its_text(
    tmp_path: Path, start: datetime, kept: bool
) -> None:
    """``counterfactual_run``: the kept Alternative where its start is naive or in UTC (an
    equal time in another zone compares as its parsed text would only by instant), else None
    (the ending reads the JSON); the counterfactual read back is the same either way."""
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        with ledger.transaction():
            ledger.add_job(job_request("a", NOW), 1000, 1000, "queue.jsonl:1", NOW)
        alt = Alternative(("qc/0",), "qc", "T4", start, 600.0, 1e5, 30.0, 0.8, 0.1)
        with ledger.transaction():
            ledger.record_decision(Decision("a", "start", "go", "test", alt, alt), NOW)
        assert (ledger.counterfactual_run("a") is alt) is kept
        assert ledger.counterfactual("a") == json.loads(json.dumps(alternative_json(alt)))


CISO_PAIR = (RegionSettings(name="ciso", zone="US-CAL-CISO", gpus=("RTX6000-Ada",) * 2),)


class _OnTheSibling:
    """``run-now``, but each start on the other of the region's two GPUs: run-now's copy
    stays on the first, the run goes to its sibling, at the same time for the same work."""

    name = "on-the-sibling"

    def plan(self, now, jobs, devices, forecasts):  # type: ignore[no-untyped-def]
        out = []
        for planned in RunNow().plan(now, jobs, devices, forecasts):
            chosen = planned.chosen
            if planned.action == "start" and chosen is not None:
                sibling = tuple("ciso/1" if d == "ciso/0" else "ciso/0" for d in chosen.device_ids)
                moved = replace(chosen, device_ids=sibling)
                out.append(replace(planned, chosen=moved, run_now=chosen))
            else:
                out.append(planned)
        return out


def test_a_run_on_a_sibling_gpu_of_run_nows_copy_saved_exactly_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run-now's copy on ``ciso/0``, the run on ``ciso/1``: the same GPU type, region, start
    and predicted duration. ``jobs`` and ``report --by job`` showed ``saved 5.551e-17`` and
    ``-1.11e-16`` g for such runs (the copy rescaled and re-priced apart from the run); a
    saving is place and time, so such a copy is the run itself and saved exactly nothing."""
    clock, executor = FakeClock(), RecordingExecutor()
    executor.reported_power_w = 187.3  # an executor's energy: a figure not predicted exactly
    service = make_service(tmp_path, executor, regions=CISO_PAIR)
    service.policy = _OnTheSibling()
    service.start(clock())
    ids = [f"j{i}" for i in range(len(MODELS) * 3)]
    for i, job_id in enumerate(ids):
        append(service.queue.path, job_line(id=job_id, model=MODELS[i % 4], requests=37 + 101 * i))
        for _ in range(100):
            service.tick(clock())
            clock.advance(600)
            if service.ledger.outcome(job_id) is not None:
                break
    for job_id in ids:
        outcome, run = service.ledger.outcome(job_id), service.ledger.run(job_id)
        stored = service.ledger.counterfactual(job_id)
        assert outcome is not None and run is not None and stored is not None
        assert run.device_ids == ("ciso/1",) and stored["device_ids"] == ["ciso/0"]
        assert outcome["total_g"] is not None
        assert outcome["run_now_total_g"] == outcome["total_g"], job_id
    service.ledger.close()
    _jobs_and_report_show_nothing_saved(tmp_path, monkeypatch, capsys)


def test_a_copy_in_another_region_or_of_another_type_or_size_is_not_the_run() -> None:
    start = datetime.fromisoformat("2026-03-02T00:00:00+00:00")
    own = {"device_ids": ["qc/0"], "region": "qc", "gpu": "T4", "start": start.isoformat(),
           "duration_s": 600.0}  # fmt: skip
    where = ("qc", "T4")
    assert is_the_run(own | {"device_ids": ["qc/1"]}, ("qc/0",), start, 600.0, where)
    assert not is_the_run(own | {"device_ids": ["qc/1"]}, ("qc/0",), start, 600.0)
    assert not is_the_run(own | {"region": "pace"}, ("pace/0",), start, 600.0, where)
    assert not is_the_run(own | {"gpu": "A100"}, ("qc/1",), start, 600.0, where)
    assert not is_the_run(own, ("qc/1", "qc/2"), start, 600.0, where)
    assert not is_the_run(own | {"device_ids": ["qc/1"]}, ("qc/0",), start, 601.0, where)
    assert not is_the_run(own, ("qc/1",), start + timedelta(seconds=1), 600.0, where)
