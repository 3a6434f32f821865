"""The waiting jobs' index: after any sequence of the ledger's writes (and rollbacks, and
commits by another connection), the round's two questions get the answers of the SQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.ledger import Ledger
from daemon.queue.job_request import JobRequest
from daemon.queue.line import parse_line
from daemon.states import TRANSITIONS
from tests.daemon.helpers import job_line

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def _request(job_id: str, priority: int, deadline_h: int | None) -> JobRequest:
    fields: dict[str, object] = {"id": job_id, "priority": priority}
    if deadline_h is not None:
        fields["deadline"] = (NOW + timedelta(hours=deadline_h)).isoformat()
    request = parse_line(job_line(**fields).strip(), NOW)
    assert isinstance(request, JobRequest)
    return request


def _sql_most_urgent(db: sqlite3.Connection, limit: int) -> list[str]:
    rows = db.execute(
        "SELECT job_id FROM jobs WHERE state IN ('queued', 'planned') ORDER BY priority DESC,"
        " deadline IS NULL, deadline, submitted_at, job_id LIMIT ?",
        (limit,),
    )
    return [r[0] for r in rows]


def _sql_to_settle(db: sqlite3.Connection, now: datetime) -> list[str]:
    rows = db.execute(
        "SELECT job_id FROM jobs WHERE state IN ('queued', 'planned') AND "
        "(cancel_requested_at IS NOT NULL OR (deadline IS NOT NULL AND deadline <= ?)) "
        "ORDER BY submitted_at, job_id",
        (now.isoformat(),),
    )
    return [r[0] for r in rows]


def _check(ledger: Ledger, db: sqlite3.Connection, now: datetime) -> None:
    for limit in (1, 3, 100, -1):
        urgent = ledger.most_urgent_waiting(limit)
        assert [j.job_id for j in urgent] == _sql_most_urgent(db, limit)
        assert urgent == [ledger.job(j.job_id) for j in urgent]  # the records are current
    assert [j.job_id for j in ledger.waiting_to_settle(now)] == _sql_to_settle(db, now)


_STEP = st.tuples(
    st.sampled_from(["add", "move", "cancel", "rollback", "other"]),
    st.integers(0, 5),  # which job
    st.integers(-1, 2),  # priority
    st.one_of(st.none(), st.integers(0, 6)),  # deadline, hours after NOW
    st.sampled_from(["queued", "planned", "running", "succeeded", "cancelled", "expired"]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(_STEP, max_size=40))
def test_the_index_answers_as_the_sql_after_any_writes(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int, int, int | None, str]]
) -> None:
    path = tmp_path_factory.mktemp("waiting") / "ledger.db"
    with Ledger.open(path, durable=False) as ledger, Ledger.open(path, durable=False) as other:
        db = sqlite3.connect(path)
        added: set[str] = set()
        for k, (op, n, priority, deadline_h, state) in enumerate(steps):
            at = NOW + timedelta(minutes=k)
            job_id = f"j{n}"
            if op == "add" and job_id not in added:
                with ledger.transaction():
                    ledger.add_job(_request(job_id, priority, deadline_h), 1, 1, "q", at)
                added.add(job_id)
            elif op == "other" and job_id not in added:  # another connection commits
                with other.transaction():
                    other.add_job(_request(job_id, priority, deadline_h), 1, 1, "q", at)
                added.add(job_id)
            elif op == "move" and job_id in added:
                current = ledger.job_state(job_id)
                if state in TRANSITIONS[current]:
                    with ledger.transaction():
                        ledger.transition(job_id, state, at, "moved", seen=current)
            elif op == "cancel" and job_id in added:
                with ledger.transaction():
                    ledger.request_cancel(job_id, at)
            elif op == "rollback" and job_id in added:
                current = ledger.job_state(job_id)
                try:
                    with ledger.transaction():
                        if state in TRANSITIONS[current]:
                            ledger.transition(job_id, state, at, "moved")
                        ledger.request_cancel(job_id, at)
                        raise KeyError("the step failed")
                except KeyError:
                    pass
            _check(ledger, db, at + timedelta(hours=2))
        db.close()


def test_a_requeued_job_a_rolled_back_start_and_another_writer_are_seen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger, Ledger.open(path) as other:
        db = sqlite3.connect(path)
        with ledger.transaction():
            ledger.add_jobs([(_request(j, 0, 3), 1, 1, "q", NOW) for j in "abc"])
        _check(ledger, db, NOW)
        with ledger.transaction():
            ledger.transition("a", "running", NOW, "dispatched", seen="queued")
        _check(ledger, db, NOW)
        with ledger.transaction():  # requeued: its order columns are read again
            ledger.transition("a", "queued", NOW, "requeued", seen="running")
        _check(ledger, db, NOW)
        try:
            with ledger.transaction():
                ledger.transition("b", "running", NOW, "dispatched", seen="queued")
                raise KeyError("the launch failed")
        except KeyError:
            pass
        _check(ledger, db, NOW)
        with other.transaction():  # another connection: a job with a higher priority
            other.add_job(_request("d", 5, None), 1, 1, "q", NOW)
            other.request_cancel("c", NOW)
        _check(ledger, db, NOW)
        assert [j.job_id for j in ledger.most_urgent_waiting(1)] == ["d"]
        assert [j.job_id for j in ledger.waiting_to_settle(NOW)] == ["c"]
        db.close()


def test_an_unchanged_waiting_job_is_the_same_record_round_after_round(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger, Ledger.open(path) as other:
        with ledger.transaction():
            ledger.add_jobs([(_request(j, 0, 3), 1, 1, "q", NOW) for j in "ab"])
        a, b = ledger.most_urgent_waiting(10)
        with ledger.transaction():
            ledger.request_cancel("b", NOW)
        again = ledger.most_urgent_waiting(10)
        assert again[0] is a  # unchanged: not built again
        assert again[1] is not b and again[1].cancel_requested_at == NOW
        with other.transaction():  # another connection commits: the index is read again
            other.add_job(_request("c", 0, None), 1, 1, "q", NOW)
        after = ledger.most_urgent_waiting(10)
        assert [j.job_id for j in after] == ["a", "b", "c"]
        assert after[0] is a and after[1] is again[1]  # same columns: still the same records
