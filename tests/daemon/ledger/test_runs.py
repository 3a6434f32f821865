"""A batch of run ends (``Ledger.finish_runs``) and a round's launches (``Ledger.start_runs``,
``Ledger.set_runs_started``) store what the one-by-one calls store."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.ledger import EXPORTABLE, Ledger, RunEnd, RunStart
from daemon.states import InvalidTransitionError
from policies import Alternative, Decision
from tests.daemon.helpers import job_request

NOW = datetime(2024, 6, 1, tzinfo=UTC)
LATER = NOW + timedelta(minutes=10)
JOBS = ("a", "b", "c", "d")


def _running(path: Path) -> Ledger:
    """A ledger with JOBS running, each with a decision and a started run."""
    ledger = Ledger.open(path, durable=False)
    with ledger.transaction():
        ledger.add_jobs([(job_request(j, NOW), 1000, 1000, "queue.jsonl:1", NOW) for j in JOBS])
    for n, job_id in enumerate(JOBS):
        chosen = Alternative((f"qc/{n}",), "qc", "T4", NOW, 60.0, 1000.0, 30.0, 0.5, 0.25)
        with ledger.transaction():
            ledger.record_decision(Decision(job_id, "start", "go", "test", chosen, chosen), NOW)
            ledger.transition(job_id, "running", NOW, "dispatched", seen="queued")
            ledger.add_run(job_id, "local", [f"qc/{n}"], [n], 60.0, NOW)
            ledger.set_run_started(job_id, f"tok-{job_id}", NOW)
    return ledger


def _ends() -> list[RunEnd]:
    """Ends with the outcome columns a finished run has, other column sets, none, NaN."""
    full = {"started_at": NOW.isoformat(), "finished_at": LATER.isoformat(), "duration_s": 600.0,
            "gpus": 1, "energy_j": 5.0, "total_g": 0.25, "details_json": '{"x": 1}'}  # fmt: skip
    other = {"started_at": NOW.isoformat(), "total_g": math.nan}
    ok = "exit code 0"
    return [
        RunEnd("a", LATER, 0, None, ok, "succeeded", ok, full),
        RunEnd("b", LATER, 0, None, ok, "succeeded", ok, full | {"gpus": 2}),
        RunEnd("c", LATER, None, 9, "killed", "failed", "killed by signal 9", other),
        RunEnd("d", LATER, None, None, "", "cancelled", "cancelled by its owner", {}),
    ]


def _one_by_one(ledger: Ledger, ends: Sequence[RunEnd], at: datetime) -> None:
    for e in ends:
        ledger.finish_run(e.job_id, e.finished_at, e.exit_code, e.signal, e.reason)
        ledger.transition(e.job_id, e.state, at, e.state_reason, seen="running")
        if e.columns:
            ledger.record_outcome(e.job_id, at, **e.columns)


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in rowid order."""
    with sqlite3.connect(path) as db:
        tables = [*EXPORTABLE, "sqlite_sequence"]
        return {t: [tuple(r) for r in db.execute(f"SELECT * FROM {t} ORDER BY rowid")]
                for t in tables}  # fmt: skip


def test_a_batch_stores_the_rows_one_by_one_stores(tmp_path: Path) -> None:
    batched, single = _running(tmp_path / "batched.db"), _running(tmp_path / "single.db")
    with batched.transaction():
        batched.finish_runs(_ends(), LATER)
    with single.transaction():
        _one_by_one(single, _ends(), LATER)
    rows = _tables(tmp_path / "batched.db")
    assert repr(rows) == repr(_tables(tmp_path / "single.db"))  # repr: NaN equals NaN
    assert [r[:2] for r in rows["outcomes"]] == [(j, NOW.isoformat()) for j in "abc"]
    with Ledger.open_readonly(tmp_path / "batched.db") as reader:
        for job_id in JOBS:  # what the writer kept equals what a reader reads
            assert batched.run(job_id) == reader.run(job_id)
            assert batched.job(job_id) == reader.job(job_id)
    assert batched.active_runs() == []
    batched.close()
    single.close()


def test_a_job_no_longer_running_is_recorded_as_one_by_one(tmp_path: Path) -> None:
    """Another connection moved ``b`` back to queued: its move to ``failed`` is still legal
    and recorded as the one-by-one calls record it; the others as before."""
    batched, single = _running(tmp_path / "batched.db"), _running(tmp_path / "single.db")
    for path in (tmp_path / "batched.db", tmp_path / "single.db"):
        with Ledger.open(path) as other, other.transaction():
            other.transition("b", "queued", NOW, "requeued elsewhere", seen="running")
    ends = [e if e.job_id != "b" else RunEnd("b", LATER, 1, None, "", "failed", "exit code 1",
                                             {"total_g": 1.0}) for e in _ends()]  # fmt: skip
    with batched.transaction():
        batched.finish_runs(ends, LATER)
    with single.transaction():
        _one_by_one(single, ends, LATER)
    assert repr(_tables(tmp_path / "batched.db")) == repr(_tables(tmp_path / "single.db"))
    assert [t.from_state for t in batched.transitions("b")][-1] == "queued"
    batched.close()
    single.close()


def test_a_forbidden_move_stores_nothing_of_the_batch(tmp_path: Path) -> None:
    ledger = _running(tmp_path / "ledger.db")
    before = _tables(tmp_path / "ledger.db")
    with Ledger.open(tmp_path / "ledger.db") as other, other.transaction():
        other.transition("c", "cancelled", NOW, "cancelled elsewhere", seen="running")
    with pytest.raises(InvalidTransitionError), ledger.transaction():
        ledger.finish_runs(_ends(), LATER)  # c: cancelled -> failed is not allowed
    after = _tables(tmp_path / "ledger.db")
    assert after["outcomes"] == before["outcomes"] == []
    assert after["runs"] == before["runs"]
    assert [r for r in after["transitions"] if r not in before["transitions"]] == [
        (len(before["transitions"]) + 1, "c", "running", "cancelled", NOW.isoformat(),
         "cancelled elsewhere"),
    ]  # fmt: skip
    assert {j: ledger.job_state(j) for j in JOBS} == {
        "a": "running", "b": "running", "c": "cancelled", "d": "running",
    }  # fmt: skip
    ledger.close()


def test_no_ends_write_nothing(tmp_path: Path) -> None:
    ledger = _running(tmp_path / "ledger.db")
    before = _tables(tmp_path / "ledger.db")
    with ledger.transaction():
        ledger.finish_runs([], LATER)
    assert _tables(tmp_path / "ledger.db") == before
    ledger.close()


def test_a_final_state_the_machine_forbids_raises_and_stores_nothing(tmp_path: Path) -> None:
    ledger = _running(tmp_path / "ledger.db")
    before = _tables(tmp_path / "ledger.db")
    ends = _ends()
    ends[3] = RunEnd("d", LATER, None, None, "", "expired", "past its deadline", {})
    with pytest.raises(InvalidTransitionError), ledger.transaction():
        ledger.finish_runs(ends, LATER)  # running -> expired is not a move
    assert _tables(tmp_path / "ledger.db") == before
    assert {j: ledger.job_state(j) for j in JOBS} == dict.fromkeys(JOBS, "running")
    ledger.close()


# -- a round's launches (Ledger.start_runs, Ledger.set_runs_started) ------------------------


def _waiting(path: Path) -> Ledger:
    """A ledger with JOBS waiting: a, b queued; c planned; d planned with a run held for it."""
    ledger = Ledger.open(path, durable=False)
    with ledger.transaction():
        ledger.add_jobs([(job_request(j, NOW), 1000, 1000, "queue.jsonl:1", NOW) for j in JOBS])
        for job_id in ("c", "d"):
            ledger.transition(job_id, "planned", NOW, "held for later", seen="queued")
        ledger.add_run("d", "slurm", ["qc/9"], [9], 30.0, NOW)
        ledger.set_run_token("d", "slurm-held-d")
    return ledger


def _starts(held: bool = False) -> list[RunStart]:
    """Launches of a, b and c (and d, replacing its held run, with ``held``)."""
    starts = [
        RunStart("a", "queued", "dispatched: go", "local", ("qc/0",), (0,), 60.0),
        RunStart("b", "queued", "dispatched: go", "local", ("qc/1", "qc/2"), (1, 2), 7.5),
        RunStart("c", "planned", "dispatched: its slot", "local", ("qc/3",), (3,), 1e9),
    ]
    if held:
        starts.append(RunStart("d", "planned", "dispatched: released", "slurm", ("qc/9",),
                               (9,), 30.0, held=True, token="slurm-held-d"))  # fmt: skip
    return starts


def _started(starts: Sequence[RunStart]) -> list[tuple[str, str, datetime]]:
    return [(s.job_id, f"tok-{s.job_id}", LATER + timedelta(seconds=n))
            for n, s in enumerate(starts)]  # fmt: skip


def _launch_one_by_one(ledger: Ledger, starts: Sequence[RunStart], at: datetime) -> None:
    with ledger.transaction():
        for s in starts:
            ledger.transition(s.job_id, "running", at, s.reason, seen=s.seen)
            if s.held:
                ledger.drop_run(s.job_id)
            ledger.add_run(s.job_id, s.executor, s.device_ids, s.gpu_indices,
                           s.expected_duration_s, at)  # fmt: skip
            if s.token:
                ledger.set_run_token(s.job_id, s.token)
    with ledger.transaction():
        for job_id, token, started_at in _started(starts):
            ledger.set_run_started(job_id, token, started_at)


def _launch_batched(ledger: Ledger, starts: Sequence[RunStart], at: datetime) -> None:
    with ledger.transaction():
        ledger.start_runs(starts, at)
    with ledger.transaction():
        ledger.set_runs_started(_started(starts))


@pytest.mark.parametrize("held", [False, True])
def test_a_round_of_launches_stores_the_rows_one_by_one_stores(tmp_path: Path, held: bool) -> None:
    batched, single = _waiting(tmp_path / "batched.db"), _waiting(tmp_path / "single.db")
    _launch_batched(batched, _starts(held), LATER)
    _launch_one_by_one(single, _starts(held), LATER)
    rows = _tables(tmp_path / "batched.db")
    assert repr(rows) == repr(_tables(tmp_path / "single.db"))
    assert [r[0] for r in rows["runs"]] == (["a", "b", "c", "d"] if held else ["d", "a", "b", "c"])
    launched = [s.job_id for s in _starts(held)]
    with Ledger.open_readonly(tmp_path / "batched.db") as reader:
        for job_id in JOBS:  # what the writer kept equals what a reader reads
            assert batched.run(job_id) == reader.run(job_id)
            assert batched.job(job_id) == reader.job(job_id)
    assert [r.job_id for r in batched.active_runs()] == launched
    assert all(r.token == f"tok-{r.job_id}" for r in batched.active_runs())
    batched.close()
    single.close()


def test_a_job_moved_since_it_was_read_is_launched_as_one_by_one(tmp_path: Path) -> None:
    """Another connection planned ``b`` meanwhile: its move to running is still legal and
    recorded from the state it is in, as the one-by-one calls record it."""
    batched, single = _waiting(tmp_path / "batched.db"), _waiting(tmp_path / "single.db")
    for path in (tmp_path / "batched.db", tmp_path / "single.db"):
        with Ledger.open(path) as other, other.transaction():
            other.transition("b", "planned", NOW, "planned elsewhere", seen="queued")
    _launch_batched(batched, _starts(), LATER)
    _launch_one_by_one(single, _starts(), LATER)
    assert repr(_tables(tmp_path / "batched.db")) == repr(_tables(tmp_path / "single.db"))
    assert [t.from_state for t in batched.transitions("b")][-1] == "planned"
    batched.close()
    single.close()


@pytest.mark.parametrize("seen", ["cancelled", "running", "succeeded", "bogus"])
def test_a_launch_the_state_machine_forbids_raises_and_stores_nothing(
    tmp_path: Path, seen: str
) -> None:
    """``b`` was cancelled meanwhile: whether the round read it queued (batched, then one by
    one) or in a state that does not lead to running (one by one), nothing of it is kept."""
    ledger = _waiting(tmp_path / "ledger.db")
    with Ledger.open(tmp_path / "ledger.db") as other, other.transaction():
        other.transition("b", "cancelled", NOW, "cancelled elsewhere", seen="queued")
    before = _tables(tmp_path / "ledger.db")
    for starts in (_starts(), [*_starts()[:1], RunStart("b", seen, "x", "local", (), (), 1.0)]):
        with pytest.raises(InvalidTransitionError), ledger.transaction():
            ledger.start_runs(starts, LATER)  # b: cancelled -> running is not allowed
        assert _tables(tmp_path / "ledger.db") == before
        assert ledger.active_runs() == []
        assert ledger.run("a") is None
    ledger.close()


def test_no_launches_write_nothing(tmp_path: Path) -> None:
    ledger = _waiting(tmp_path / "ledger.db")
    before = _tables(tmp_path / "ledger.db")
    with ledger.transaction():
        ledger.start_runs([], LATER)
        ledger.set_runs_started([])
    assert _tables(tmp_path / "ledger.db") == before
    ledger.close()


def test_active_runs_carry_their_owner_for_executors_to_find_them_by(tmp_path: Path) -> None:
    from daemon.endings.rules import run_handle

    ledger = _running(tmp_path / "l.db")
    runs = ledger.active_runs()
    assert [r.uid for r in runs] == [1000] * len(JOBS)
    assert run_handle(runs[0]).uid == 1000  # a Slurm job found by name must be its owner's
    ledger.close()


def test_active_runs_read_by_position_are_the_records_read_by_name(tmp_path: Path) -> None:
    """``active_runs`` takes each column by position (``active_run_record``): the same records,
    field by field and type by type, in the same order, as ``run_record`` of the named row."""
    from daemon.ledger.run_rows import active_run_record, run_record
    from daemon.ledger.values import dt
    from daemon.queue.job_request import JobRequest
    from daemon.queue.line import parse_line
    from tests.daemon.helpers import job_line

    path = tmp_path / "l.db"
    ledger = Ledger.open(path, durable=False)
    ids = [f"j{n}" for n in range(8)]
    deadlines = {"j1": "2024-06-02T00:00:00+00:00", "j4": "2024-06-01T05:30:00+02:00"}
    jobs = []
    for n, job_id in enumerate(ids):
        line = job_line(
            id=job_id, **({"deadline": deadlines[job_id]} if job_id in deadlines else {})
        )
        request = parse_line(line.strip(), NOW)
        assert isinstance(request, JobRequest)
        jobs.append((request, 1000 + n, 1000, f"q.jsonl:{n}", NOW))
    with ledger.transaction():
        ledger.add_jobs(jobs)
    for n, job_id in enumerate(ids):
        at = NOW + timedelta(seconds=(n % 3) * 7.25)  # ties: three launch times
        with ledger.transaction():
            ledger.transition(job_id, "running", at, "dispatched", seen="queued")
            ledger.add_run(job_id, "local", [f"qc/{n}", f"qc/{n + 1}"][: 1 + n % 2], [n], 60.0 + n,
                           at)  # fmt: skip
            if n != 2:  # j2: the daemon died before the launch answered (no token)
                ledger.set_run_started(job_id, f"tok-{job_id}", at + timedelta(microseconds=n))
            if n in (5, 6):  # its end written, its job not moved yet
                ledger.finish_run(job_id, LATER, 0 if n == 5 else None, None if n == 5 else 9,
                                  "exit code 0" if n == 5 else "killed")  # fmt: skip
    with ledger.transaction():
        ledger.transition("j7", "failed", LATER, "gone", seen="running")
    runs = ledger.active_runs()
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    rows = con.execute(
        "SELECT runs.*, jobs.deadline AS deadline, jobs.uid AS uid"
        " FROM runs JOIN jobs USING (job_id)"
        " WHERE jobs.state = 'running' ORDER BY runs.launched_at"
    ).fetchall()
    con.close()
    named = [run_record(row, dt(row["deadline"]), row["uid"]) for row in rows]
    assert [r.job_id for r in named] == ["j0", "j3", "j6", "j1", "j4", "j2", "j5"]
    assert runs == named
    for got, want in zip(runs, named, strict=True):
        for field in want.__dataclass_fields__:
            value, expected = getattr(got, field), getattr(want, field)
            assert (value, type(value)) == (expected, type(expected)), field
            if isinstance(expected, datetime):
                assert value.tzinfo == expected.tzinfo, field
    assert {r.deadline for r in runs} > {None} and {r.token for r in runs} > {None}
    values = ("x", "local", None, '["a/0"]', "[0]", 1.0, NOW.isoformat(), None, None, None,
              None, None, None, None)  # fmt: skip
    assert active_run_record(values).device_ids == ("a/0",)
    ledger.close()
