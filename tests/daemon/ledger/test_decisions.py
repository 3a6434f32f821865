"""The ledger's decisions: a round's rows in one statement, as one by one would store them, and
the JSON texts they hold (daemon.ledger.decisions)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.ledger import LatestPlan, Ledger, LedgerError
from daemon.ledger.decisions import _DecisionTexts, alternative_json
from daemon.planning import stored_plan, stored_plans
from policies import Alternative, Decision
from tests.daemon.helpers import job_request

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def _decisions() -> list[Decision]:
    """Decisions of every shape a round stores: plans sharing devices, a run-now
    counterfactual that is also an alternative, other alternatives, none, a NaN, a reject."""

    def alt(device: str, start_min: int, total: float) -> Alternative:
        start = NOW + timedelta(minutes=start_min)
        return Alternative((device, "qc/9"), "qc", "T4", start, 60.0, 3.6e5, 30.0, total, 1.0)

    now_alt, later = alt("qc/0", 0, 5.0), alt("qc/1", 30, 2.5)
    others = (later, now_alt, alt("x", 45, 2.0))
    return [
        Decision("a", "hold", "hold: later", "test", later, now_alt, others),
        Decision("b", "hold", "hold: same devices", "test", alt("qc/1", 45, 2.25), now_alt),
        Decision("c", "start", "start: now", "test", now_alt, now_alt, ()),
        Decision("a", "hold", "hold: moved", "test", alt("qc/0", 60, float("nan"))),
        Decision("d", "reject", "reject: fits nowhere", "test"),
    ]  # fmt: skip


def test_a_batch_of_decisions_stores_the_rows_one_by_one_would(tmp_path: Path) -> None:
    decisions, stored = _decisions(), {}
    for how in ("one_by_one", "batch"):
        with Ledger.open(tmp_path / f"{how}.db") as ledger:
            with ledger.transaction():
                for name in "abc":  # added here: their latest rows are kept, d's are read
                    ledger.add_job(job_request(name, NOW), 1000, 1000, "queue.jsonl:1", NOW)
            with Ledger.open(tmp_path / f"{how}.db") as other, other.transaction():
                other.add_job(job_request("d", NOW), 1000, 1000, "queue.jsonl:2", NOW)
            with ledger.transaction():
                if how == "batch":
                    ledger.record_decisions(decisions, NOW)
                else:
                    for decision in decisions:
                        ledger.record_decisions([decision], NOW)
            latest = {name: ledger.latest_decision(name) for name in "abcd"}
            counterfactual = {name: ledger.counterfactual(name) for name in "abcd"}
            rows = ledger._db.execute("SELECT * FROM decisions ORDER BY seq").fetchall()
            stored[how] = ([tuple(row) for row in rows], latest, counterfactual)
    assert stored["batch"] == stored["one_by_one"]
    rows = stored["batch"][0]
    assert [row[1] for row in rows] == [d.job_id for d in decisions]
    for row, decision in zip(rows, decisions, strict=True):  # the texts json.dumps writes
        chosen, run_now = decision.chosen, decision.run_now
        assert row[8] == (json.dumps(list(chosen.device_ids)) if chosen else None)
        assert row[17] == (json.dumps(alternative_json(run_now)) if run_now else None)
        assert row[18] == json.dumps([alternative_json(a) for a in decision.alternatives])
    latest_a = stored["batch"][1]["a"]
    assert latest_a is not None and latest_a.reason == "hold: moved"  # the latest of two


def test_a_failing_batch_of_decisions_stores_none(ledger: Ledger) -> None:
    with ledger.transaction():
        ledger.add_job(job_request("a", NOW), 1000, 1000, "queue.jsonl:1", NOW)
    unknown = _decisions()[4]  # about job "d", which the ledger does not hold
    with pytest.raises(LedgerError), ledger.transaction():
        ledger.record_decisions([_decisions()[0], unknown], NOW)
    assert ledger.latest_decision("a") is None
    assert ledger._db.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0


_FIGURES = st.one_of(st.floats(), st.integers(-(10**20), 10**20), st.just(-0.0))


@given(
    st.tuples(*[_FIGURES] * 5),
    st.lists(st.text(max_size=8), max_size=3),
    st.text(max_size=8),
    st.sampled_from([NOW, NOW.astimezone(timezone(timedelta(hours=-5)))]),
)
def test_decision_texts_are_those_json_dumps_writes(
    figures: tuple[float, ...], devices: list[str], region: str, start: datetime
) -> None:
    alt = Alternative(tuple(devices), region, f"{region}-gpu", start, *figures)
    texts = _DecisionTexts()
    for _ in range(2):  # the second time from the batch's kept texts
        assert texts.alternative(alt) == json.dumps(alternative_json(alt))
        assert texts.devices(alt.device_ids) == json.dumps(devices)


# Figures that equal each other and write other texts (1 and 1.0 and True, 0.0 and -0.0), and
# ones json.dumps writes its own way (NaN, infinities).
_ALIKE = st.sampled_from([1.0, 1, True, 0.0, -0.0, 0, 2.5, math.nan, math.inf, 1e308])


@given(st.lists(st.tuples(*[_ALIKE] * 5), min_size=1, max_size=12))
def test_decision_texts_kept_between_rounds_are_those_json_dumps_writes(
    rounds: list[tuple[float, ...]],
) -> None:
    """A ledger's texts are kept from round to round: an alternative whose figures equal an
    earlier one's but write otherwise gets its own text."""
    texts = _DecisionTexts()
    for k, figures in enumerate(rounds * 2):
        alt = Alternative(("qc/0",), "qc", "T4", NOW + timedelta(minutes=k), *figures)
        assert texts.alternative(alt) == json.dumps(alternative_json(alt))


def test_the_texts_of_earlier_rounds_are_let_go_when_full(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_DecisionTexts, "KEPT", 4)  # more after the second round
    with ledger.transaction():
        ledger.add_job(job_request("a", NOW), 1000, 1000, "queue.jsonl:1", NOW)
    plan = Alternative(("qc/0",), "qc", "T4", NOW, 60.0, 3.6e5, 30.0, 3.0, 1.0)
    kept, written = [], []
    for minutes in range(4):
        at = NOW + timedelta(minutes=minutes)
        run_now = replace(plan, start=at, intensity_g_per_kwh=30.0 + minutes)
        with ledger.transaction():
            ledger.record_decision(Decision("a", "hold", "wait", "test", plan, run_now), at)
        kept.append(ledger._texts)
        written.append(json.dumps(alternative_json(run_now)))
    assert kept[0] is kept[1] and kept[1] is not kept[2]  # full after two rounds
    rows = ledger._db.execute("SELECT run_now_json FROM decisions ORDER BY seq").fetchall()
    assert [row[0] for row in rows] == written


def test_a_latest_decision_without_its_alternatives_is_the_same_record_less_them(
    tmp_path: Path,
) -> None:
    """Kept (the job was added here) or read (added by another connection): the same."""
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        with ledger.transaction():
            for name in "abc":
                ledger.add_job(job_request(name, NOW), 1000, 1000, "queue.jsonl:1", NOW)
        with Ledger.open(tmp_path / "ledger.db") as other, other.transaction():
            other.add_job(job_request("d", NOW), 1000, 1000, "queue.jsonl:2", NOW)
        with ledger.transaction():
            ledger.record_decisions(_decisions(), NOW)
        for name in "abcd":
            full = ledger.latest_decision(name)
            assert full is not None
            bare = ledger.latest_decision(name, alternatives=False)
            assert repr(bare) == repr(replace(full, alternatives=()))  # repr: NaN equals NaN
        assert ledger.latest_decision("nobody", alternatives=False) is None


def test_the_latest_plans_read_together_are_those_read_one_by_one(tmp_path: Path) -> None:
    """Kept (added here), read (added by another connection, more than one query's worth),
    none decided, unknown: the same plans as each job's latest decision, on this connection
    and on a fresh one (as after a restart) that keeps none."""
    path = tmp_path / "ledger.db"
    others = [f"j{k:03d}" for k in range(600)]

    def alt(device: str, minutes: int) -> Alternative:
        start = NOW + timedelta(minutes=minutes)
        return Alternative((device,), "qc", "T4", start, 60.0, 3.6e5, 30.0, 2.0, 1.0)

    with Ledger.open(path) as ledger:
        with ledger.transaction():
            for name in "abc":
                ledger.add_job(job_request(name, NOW), 1000, 1000, "queue.jsonl:1", NOW)
        with Ledger.open(path) as other, other.transaction():
            for k, name in enumerate(["d", "e", *others]):
                other.add_job(job_request(name, NOW), 1000, 1000, f"queue.jsonl:{k + 2}", NOW)
        then = [
            Decision(name, "hold", "hold: first", "test", alt("qc/0", 10 + k))
            for k, name in enumerate(others)
        ]
        moved = (
            lambda name, k: Decision(name, "hold", "hold: moved", "test", alt("qc/1", k)),
            lambda name, k: Decision(name, "start", "start: now", "test", alt("qc/2", 0)),
            lambda name, k: Decision(name, "reject", "reject: fits nowhere", "test"),
        )
        with ledger.transaction():
            ledger.record_decisions([*_decisions(), *then], NOW)
            ledger.record_decisions(
                [moved[k % 3](name, 20 + k) for k, name in enumerate(others)], NOW
            )
        asked = ["a", "b", "c", "d", "e", "nobody", *others]
        together = _same_plans(ledger, asked)
        with Ledger.open(path) as fresh:
            assert _same_plans(fresh, asked) == together
    assert together.keys() == set(asked) - {"e", "nobody"}
    assert sum(p.action == "hold" for p in together.values()) == 2 + 200  # a, b, every 3rd


def _same_plans(reader: Ledger, asked: list[str]) -> dict[str, LatestPlan]:
    """``reader``'s latest plans of ``asked``, checked against its reads one job at a time."""
    one_by_one = {
        name: (d.action, d.region, d.gpu, d.planned_start)
        for name in asked
        if (d := reader.latest_decision(name, alternatives=False)) is not None
    }
    together = reader.latest_plans(asked)
    assert {n: (p.action, p.region, p.gpu, p.planned_start) for n, p in together.items()} == (
        one_by_one
    )
    assert stored_plans(reader, asked) == {name: stored_plan(reader, name) for name in asked}
    return together
