"""The rows the ledger keeps of the jobs it added: every answer equals a read of the file."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daemon.ledger import Ledger
from daemon.ledger import kept as kept_module
from policies import Alternative, Decision
from tests.daemon.helpers import job_request

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def _alternative(start: datetime, energy_j: float, duration_s: float = 60) -> Alternative:
    # An int duration and a NaN energy: SQLite hands back a float and NULL.
    return Alternative(("qc/0",), "qc", "T4", start, duration_s, energy_j, 30.0, 0.5, 0.25)


def _same_answers(ledger: Ledger, reader: Ledger, job_ids: list[str]) -> None:
    """Each kept answer equals the one a fresh connection reads (NaN compared as NaN)."""
    for job_id in job_ids:
        assert ledger.job(job_id) == reader.job(job_id)
        assert ledger.run(job_id) == reader.run(job_id)
        assert ledger.ending_job(job_id) == reader.ending_job(job_id)
        assert ledger.counterfactual(job_id) == reader.counterfactual(job_id)
        total = ledger.counterfactual_total_g(job_id)  # repr: NaN equals NaN, 1 is not 1.0
        assert repr(total) == repr(reader.counterfactual_total_g(job_id))
        mine, theirs = ledger.latest_decision(job_id), reader.latest_decision(job_id)
        assert repr(mine) == repr(theirs)  # repr: NaN inside the alternatives equals NaN


def test_kept_answers_equal_reads_through_a_job_life(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        with ledger.transaction():
            ledger.add_jobs(
                [(job_request(j, NOW), 1000, 1000, "queue.jsonl:1", NOW) for j in "abc"]
            )
        reader = Ledger.open_readonly(path)
        ids = ["a", "b", "c"]
        _same_answers(ledger, reader, ids)
        held = _alternative(NOW + timedelta(hours=1), math.nan, 60)
        with ledger.transaction():
            ledger.record_decision(Decision("a", "hold", "wait", "test", held, None), NOW)
            ledger.transition("a", "planned", NOW, "wait", seen="queued")
            ledger.record_decision(Decision("b", "hold", "no GPU", "test"), NOW)
        _same_answers(ledger, reader, ids)
        start = _alternative(NOW, 1000.0, 61)
        later = NOW + timedelta(minutes=5)
        with ledger.transaction():
            ledger.record_decision(Decision("a", "start", "go", "test", start, held), later)
            ledger.transition("a", "running", later, "dispatched", seen="planned")
            ledger.add_run("a", "local", ["qc/0"], [0], 61, later)
        _same_answers(ledger, reader, ids)
        ledger.request_cancel("b", later)
        ledger.request_cancel("b", later + timedelta(seconds=1))  # the first request stays
        with ledger.transaction():
            ledger.set_run_started("a", "tok", later)
        _same_answers(ledger, reader, ids)
        with ledger.transaction():
            ledger.finish_run("a", later + timedelta(minutes=1), 0, None, "exit code 0")
        _same_answers(ledger, reader, ids)
        with ledger.transaction():
            ledger.transition("a", "succeeded", later, "exit code 0", seen="running")
            ledger.transition("b", "cancelled", later, "cancelled", seen="queued")
        _same_answers(ledger, reader, ids)
        assert len(ledger._kept) == 1  # a and b ended: only c is kept
        ledger.request_cancel("a", later + timedelta(minutes=2))  # after its end: not kept
        assert ledger.job("a").cancel_requested_at is None
        assert ledger.job("b").cancel_requested_at == later
        _same_answers(ledger, reader, ids)
        reader.close()


@pytest.mark.parametrize(
    "figures",
    [(0.5, 0.25), (1, 2), (-0.0, -0.0), (math.nan, 1.0), (math.inf, 1.0), (1e308, 1e308),
     (np.float64(0.1), np.float64(0.2)), (True, True)],
)  # fmt: skip
def test_a_kept_run_now_total_is_the_one_its_json_reads_back(
    tmp_path: Path, figures: tuple[Any, Any]
) -> None:
    """The run-now grams an outcome row records, kept (not parsed) or read: the same value
    and type, whatever the counterfactual's figures; only the first one counts."""
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        with ledger.transaction():
            ledger.add_job(job_request("a", NOW), 1000, 1000, "queue.jsonl:1", NOW)
        run_now = replace(_alternative(NOW, 1000.0), operational_g=figures[0],
                          embodied_g=figures[1])  # fmt: skip
        for k, alt in enumerate([run_now, _alternative(NOW, 2000.0)]):
            at = NOW + timedelta(minutes=k)
            with ledger.transaction():
                ledger.record_decision(Decision("a", "hold", "wait", "test", alt, alt), at)
        with Ledger.open_readonly(path) as reader:
            stored = reader.counterfactual("a")
            assert stored is not None
            total = ledger.counterfactual_total_g("a")
            assert repr(total) == repr(stored["total_g"])
            assert type(total) is type(stored["total_g"])
            assert repr(total) == repr(reader.counterfactual_total_g("a"))


@pytest.mark.parametrize(
    "changes",
    [{}, {"operational_g": 1, "embodied_g": 2}, {"operational_g": -0.0, "embodied_g": -0.0},
     {"energy_j": math.nan}, {"energy_j": math.inf}, {"operational_g": 1e308, "embodied_g": 1e308},
     {"operational_g": np.float64(0.1)}, {"duration_s": True}, {"device_ids": ("qc/0", 1)},
     {"device_ids": ("qc/0", "qc/1")}, {"region": None},
     {"start": NOW.astimezone(timezone(timedelta(hours=2)))},
     {"start": NOW.replace(tzinfo=None, microsecond=7)}],
)  # fmt: skip
def test_a_kept_counterfactual_is_the_one_its_json_reads_back(
    tmp_path: Path, changes: dict[str, Any]
) -> None:
    """The run-now counterfactual of a job added here (kept, not parsed where its JSON reads
    back as itself) equals a read of the file in every value and type; only the first
    one counts."""
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        with ledger.transaction():
            ledger.add_job(job_request("a", NOW), 1000, 1000, "queue.jsonl:1", NOW)
        run_now = replace(_alternative(NOW, 1000.0, 60.0), **changes)
        for k, alt in enumerate([run_now, _alternative(NOW, 2000.0)]):
            at = NOW + timedelta(minutes=k)
            with ledger.transaction():
                ledger.record_decision(Decision("a", "hold", "wait", "test", alt, alt), at)
        with Ledger.open_readonly(path) as reader:
            stored = reader.counterfactual("a")
            assert stored is not None
            for _ in range(2):  # each answer its own dict
                mine = ledger.counterfactual("a")
                assert mine is not None
                assert repr(mine) == repr(stored)  # repr: NaN equals NaN
                assert {k: type(v) for k, v in mine.items()} == {
                    k: type(v) for k, v in stored.items()
                }
                assert [type(d) for d in mine["device_ids"]] == [
                    type(d) for d in stored["device_ids"]
                ]
                mine["device_ids"].append("changed")


def test_a_rolled_back_transaction_leaves_nothing_kept_that_was_not_committed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        with ledger.transaction():
            ledger.add_job(job_request("a", NOW), 1000, 1000, "queue.jsonl:1", NOW)
        decision = Decision("a", "start", "go", "test", _alternative(NOW, 5.0))
        with pytest.raises(RuntimeError), ledger.transaction():
            ledger.record_decision(decision, NOW)
            ledger.add_run("a", "local", ["qc/0"], [0], 60.0, NOW)
            raise RuntimeError("the round failed")
        assert ledger.latest_decision("a") is None
        assert ledger.run("a") is None
        assert ledger.counterfactual("a") is None
        with Ledger.open_readonly(path) as reader:
            _same_answers(ledger, reader, ["a"])


def test_jobs_past_the_limit_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kept_module, "JOBS_KEPT", 1)
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        with ledger.transaction():
            ledger.add_jobs([(job_request(j, NOW), 1000, 1000, "queue.jsonl:1", NOW) for j in "ab"])
            for job_id in "ab":
                decision = Decision(job_id, "start", "go", "test", _alternative(NOW, 5.0))
                ledger.record_decision(decision, NOW)
        assert len(ledger._kept) == 1
        with Ledger.open_readonly(path) as reader:
            _same_answers(ledger, reader, ["a", "b"])


def test_a_plain_request_added_is_kept_not_parsed_back(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    plain = job_request("a", NOW)
    other = replace(
        job_request("b", NOW), priority=True
    )  # a bool: stored as 1, read back as the int
    with Ledger.open(path) as ledger:
        with ledger.transaction():
            ledger.add_jobs([(plain, 1000, 1000, "q", NOW), (other, 1000, 1000, "q", NOW)])
        assert ledger.job("a").request is plain
        read_back = ledger.job("b").request
        assert read_back is not other and type(read_back.priority) is int
        with Ledger.open_readonly(path) as reader:
            assert reader.job("a") == ledger.job("a")
            assert reader.job("b").request == read_back
