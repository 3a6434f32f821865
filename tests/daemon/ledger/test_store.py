"""The ledger: schema migrations, the validated state machine, transactions, export."""

from __future__ import annotations

import contextlib
import csv
import json
import random
import sqlite3
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.ledger import (
    EXPORTABLE,
    MIGRATIONS,
    SCHEMA_VERSION,
    Ledger,
    LedgerError,
    StartedRun,
    UnknownJobError,
    export_table,
)
from daemon.states import (
    ACTIVE_STATES,
    FINAL_STATES,
    STATES,
    TRANSITIONS,
    InvalidTransitionError,
)
from policies import Alternative, Decision
from tests.daemon.helpers import job_request
from tests.daemon.ledger.undo_migrations import UNDO_VERSION_7

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def test_schema_is_migrated_once_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger.open(path).close()
    with Ledger.open(path) as again:
        assert again.schema_version() == SCHEMA_VERSION
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == SCHEMA_VERSION
    outcome_columns = {row[1] for row in db.execute("PRAGMA table_info(outcomes)")}
    assert {"measured_energy_j", "energy_method", "realised_intensity_g_per_kwh",
            "operational_g", "embodied_g", "total_g", "predicted_energy_j",
            "predicted_total_g", "run_now_total_g"} <= outcome_columns  # fmt: skip
    db.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger.open(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'x')")
    db.commit()
    db.close()
    with pytest.raises(LedgerError, match="newer than this carbond"):
        Ledger.open(path)


@pytest.mark.parametrize(
    ("path", "legal"),
    [
        (["planned", "running", "succeeded"], True),
        (["running", "failed"], True),
        (["planned", "queued", "planned", "running", "cancelled"], True),
        (["expired"], True),
        (["cancelled"], True),
        (["failed"], True),
        (["succeeded"], False),
        (["running", "queued", "running", "succeeded"], True),
        (["running", "expired"], False),
        (["expired", "running"], False),
        (["running", "succeeded", "failed"], False),
        (["cancelled", "queued"], False),
        (["bogus"], False),
    ],
)
def test_state_machine(ledger: Ledger, path: list[str], legal: bool) -> None:
    with ledger.transaction():
        ledger.add_job(job_request("j", NOW), 1000, 1000, "queue.jsonl:1", NOW)

    def walk() -> None:
        for state in path:
            ledger.transition("j", state, NOW, f"to {state}")

    if legal:
        walk()
        assert ledger.job_state("j") == path[-1]
        assert [t.to_state for t in ledger.transitions("j")] == ["queued", *path]
    else:
        with pytest.raises(InvalidTransitionError, match="job j"):
            walk()


def test_final_states_have_no_way_out() -> None:
    assert set(TRANSITIONS) == set(STATES)
    assert all(not TRANSITIONS[state] for state in FINAL_STATES)


def test_a_failed_transaction_leaves_nothing(ledger: Ledger) -> None:
    with pytest.raises(InvalidTransitionError), ledger.transaction():
        ledger.add_job(job_request("j", NOW), 1000, 1000, "queue.jsonl:1", NOW)
        ledger.transition("j", "succeeded", NOW, "impossible")
    assert ledger.jobs() == []
    with pytest.raises(UnknownJobError, match="unknown job 'j'"):
        ledger.job("j")


def _counted(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path)
    rows = db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
    db.close()
    return {str(state): int(n) for state, n in rows}


def test_counts_by_state_follow_every_change_and_rollback(tmp_path: Path, ledger: Ledger) -> None:
    with ledger.transaction():
        for name in "abcd":
            ledger.add_job(job_request(name, NOW), 1000, 1000, "queue.jsonl:1", NOW)
        ledger.transition("a", "running", NOW, "dispatched")
        ledger.transition("b", "planned", NOW, "held")
        ledger.transition("a", "succeeded", NOW, "exit 0")
    with pytest.raises(InvalidTransitionError), ledger.transaction():
        ledger.transition("c", "running", NOW, "dispatched")
        ledger.transition("d", "succeeded", NOW, "impossible")
    assert ledger.counts_by_state() == _counted(tmp_path / "ledger.db")
    assert ledger.counts_by_state() == {"planned": 1, "queued": 2, "succeeded": 1}
    with Ledger.open_readonly(tmp_path / "ledger.db") as reader:
        assert reader.counts_by_state() == ledger.counts_by_state()


def test_counts_by_state_of_a_ledger_that_kept_them_by_triggers(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger, ledger.transaction():
        for name in "abc":
            ledger.add_job(job_request(name, NOW), 1000, 1000, "queue.jsonl:1", NOW)
        ledger.transition("a", "running", NOW, "dispatched")
    version_5 = dict((v, script) for v, _, script in MIGRATIONS)[5]
    db = sqlite3.connect(path)  # back to schema 5, as a ledger of an older carbond
    db.executescript(
        UNDO_VERSION_7
        + version_5
        + "DELETE FROM schema_migrations WHERE version > 5; PRAGMA user_version = 5;"
    )
    db.close()
    with Ledger.open_readonly(path) as reader:  # not migrated yet
        assert reader.schema_version() == 5
        assert reader.counts_by_state() == {"queued": 2, "running": 1}
    with Ledger.open(path) as ledger:
        assert ledger.counts_by_state() == {"queued": 2, "running": 1}
        with ledger.transaction():
            ledger.transition("a", "succeeded", NOW, "exit 0")
        assert ledger.counts_by_state() == _counted(path) == {"queued": 2, "succeeded": 1}
    db = sqlite3.connect(path)
    left = db.execute("SELECT name FROM sqlite_master WHERE name LIKE 'job_state_counts%'")
    assert left.fetchall() == []  # the triggers and their table went with the migration
    db.close()


def test_counts_by_state_follow_a_random_history_in_the_writer_and_a_reader(
    tmp_path: Path, ledger: Ledger
) -> None:
    """Every state change of a random history (rolled-back ones too), counted by the writer
    and by a reader that opened before most of it, equals counting the rows."""
    rng = random.Random(7)
    path = tmp_path / "ledger.db"
    with ledger.transaction():
        ledger.add_job(job_request("j0", NOW), 1000, 1000, "queue.jsonl:1", NOW)
    reader = Ledger.open_readonly(path)
    try:
        for step in range(1, 150):
            moves = [(job.job_id, new) for job in ledger.jobs(sorted(ACTIVE_STATES))
                     for new in TRANSITIONS[job.state]]  # fmt: skip
            roll = rng.random() < 0.15
            with contextlib.suppress(RuntimeError), ledger.transaction():
                for _ in range(rng.randint(1, 3)):
                    if not moves or rng.random() < 0.3:
                        name = f"j{step}-{rng.randrange(10**6)}"
                        ledger.add_job(job_request(name, NOW), 1000, 1000, "q:1", NOW)
                    else:
                        job_id, new = rng.choice(moves)
                        with contextlib.suppress(InvalidTransitionError):  # moved already
                            ledger.transition(job_id, new, NOW, "random")
                if roll:
                    ledger.counts_by_state()  # counts its own writes, then forgets them
                    raise RuntimeError("rolled back")
            counted = _counted(path)
            assert ledger.counts_by_state() == counted, step
            if step % 3 == 0:  # the reader follows from wherever it last counted
                assert reader.counts_by_state() == counted, step
        assert set(_counted(path)) & FINAL_STATES  # the history finished some jobs
    finally:
        reader.close()


def test_most_urgent_waiting_reads_back_what_changed_since_last_time(ledger: Ledger) -> None:
    later = NOW.replace(hour=1)
    with ledger.transaction():
        for name in "abcd":
            ledger.add_job(job_request(name, NOW), 1000, 1000, "queue.jsonl:1", NOW)
    first = ledger.most_urgent_waiting(3)
    assert [job.job_id for job in first] == ["a", "b", "c"]
    with ledger.transaction():
        ledger.transition("a", "running", later, "dispatched")
        ledger.transition("b", "planned", later, "held")
    ledger.request_cancel("c", later)
    again = ledger.most_urgent_waiting(3)
    assert again == [ledger.job(name) for name in "bcd"]
    assert (again[0].state, again[0].updated_at) == ("planned", later)
    assert again[1].cancel_requested_at == later and again[1] is not first[2]
    assert again[2] == ledger.job("d")


def test_a_transition_from_a_stale_state_reads_the_real_one(ledger: Ledger) -> None:
    with ledger.transaction():
        ledger.add_job(job_request("j", NOW), 1000, 1000, "queue.jsonl:1", NOW)
        assert ledger.transition("j", "planned", NOW, "held", seen="queued") == "queued"
        assert ledger.transition("j", "running", NOW, "go", seen="queued") == "planned"
        with pytest.raises(InvalidTransitionError, match="from 'running' to 'planned'"):
            ledger.transition("j", "planned", NOW, "again", seen="queued")
    moves = [(t.from_state, t.to_state) for t in ledger.transitions("j")]
    assert moves == [(None, "queued"), ("queued", "planned"), ("planned", "running")]


def test_every_latest_decision_and_run_in_two_queries(ledger: Ledger) -> None:
    def plan(job_id: str, action: str, device: str) -> Decision:
        alt = Alternative((device,), "qc", "T4", NOW, 60.0, 3.6e5, 30.0, 3.0, 1.0)
        return Decision(job_id, action, f"{action} on {device}", "test", alt, None, (alt,))  # type: ignore[arg-type]

    with ledger.transaction():
        for name in "abc":
            ledger.add_job(job_request(name, NOW), 1000, 1000, "queue.jsonl:1", NOW)
            ledger.record_decision(plan(name, "hold", "qc/0"), NOW)
        for name in "ab":
            ledger.record_decision(plan(name, "start", f"qc/{name}"), NOW)
            ledger.transition(name, "running", NOW, "dispatched")
            ledger.add_run(name, "local", [f"qc/{name}"], [0], 60.0, NOW)
        ledger.transition("b", "succeeded", NOW, "exit 0")
    latest = ledger.latest_decisions(("running", "succeeded"))
    assert latest == {name: ledger.latest_decision(name) for name in "ab"}
    assert latest["a"].action == "start" and latest["a"].device_ids == ("qc/a",)
    assert ledger.runs(("running", "succeeded")) == {name: ledger.run(name) for name in "ab"}
    assert ledger.runs(("running",)).keys() == {"a"}
    bare = ledger.latest_decisions(("running", "succeeded"), alternatives=False)
    assert bare == {name: replace(d, alternatives=()) for name, d in latest.items()}
    assert latest["a"].alternatives  # the full records have them


def test_started_runs_are_the_runs_whose_latest_decision_started_them(ledger: Ledger) -> None:
    """What runs() and latest_decisions() give of them: a run whose job was decided about
    again after its start, a job with no run, and one in another state are left out."""

    def plan(job_id: str, action: str, device: str, total: float) -> Decision:
        alt = Alternative((device,), "qc", "T4", NOW, 60.0, 3.6e5, 30.0, total, 1.0)
        return Decision(job_id, action, f"{action} on {device}", "test", alt, None, (alt,))  # type: ignore[arg-type]

    later = NOW + timedelta(minutes=5)
    with ledger.transaction():
        for name in "abcde":
            ledger.add_job(job_request(name, NOW), 1000, 1000, "queue.jsonl:1", NOW)
            ledger.record_decision(plan(name, "hold", "qc/0", 2.0), NOW)
        for k, name in enumerate("abce"):
            ledger.record_decision(plan(name, "start", f"qc/{name}", 3.0 + k), NOW)
            ledger.transition(name, "running", NOW, "dispatched")
            ledger.add_run(name, "local", [f"qc/{name}", "qc/z"], [0, 1], 60.0 + k, NOW)
        ledger.set_run_started("a", "token-a", later)
        ledger.record_decision(plan("c", "hold", "qc/0", 9.0), later)  # after its start
        ledger.transition("b", "succeeded", later, "exit 0")
        ledger.transition("e", "failed", later, "exit 1")
    states = ("running", "succeeded")
    runs, decisions = ledger.runs(states), ledger.latest_decisions(states, alternatives=False)
    expected = [
        StartedRun(name, run.device_ids, run.expected_duration_s, run.launched_at,
                   run.started_at, run.finished_at, d.region, d.gpu, d.reason,
                   d.expected_energy_j, d.expected_intensity_g_per_kwh,
                   d.expected_operational_g, d.expected_embodied_g)
        for name, run in runs.items() if (d := decisions[name]).action == "start"
    ]  # fmt: skip
    got = sorted(ledger.started_runs(states), key=lambda r: r.job_id)
    assert got == sorted(expected, key=lambda r: r.job_id)
    assert [r.job_id for r in got] == ["a", "b"]
    assert got[0].started_at == later and got[0].expected_operational_g == 3.0


def test_active_runs_follow_every_write_of_runs_and_states_and_other_connections(
    tmp_path: Path, ledger: Ledger
) -> None:
    def ids() -> list[str]:
        mine = [run.job_id for run in ledger.active_runs()]
        with Ledger.open_readonly(tmp_path / "ledger.db") as reader:
            assert mine == [run.job_id for run in reader.active_runs()]
            assert ledger.active_runs() == reader.active_runs()
        return mine

    with ledger.transaction():
        for name in "abc":
            ledger.add_job(job_request(name, NOW), 1000, 1000, "queue.jsonl:1", NOW)
    assert ids() == []
    with ledger.transaction():
        for k, name in enumerate("ab"):
            ledger.transition(name, "running", NOW, "dispatched")
            ledger.add_run(name, "local", [f"qc/{name}"], [0], 60.0, NOW + timedelta(seconds=k))
    assert ids() == ["a", "b"]
    ledger.set_run_started("a", "pid:1", NOW)
    assert ids() == ["a", "b"] and ledger.active_runs()[0].token == "pid:1"
    with pytest.raises(KeyError), ledger.transaction():
        ledger.transition("a", "succeeded", NOW, "exit 0")
        raise KeyError("rolled back")
    assert ids() == ["a", "b"]
    with ledger.transaction():
        ledger.finish_run("b", NOW, 0, None, "exit 0")
        ledger.transition("b", "succeeded", NOW, "exit 0")
    assert ids() == ["a"]
    with Ledger.open(tmp_path / "ledger.db") as other, other.transaction():
        other.transition("c", "running", NOW, "dispatched")
        other.add_run("c", "local", ["qc/c"], [0], 60.0, NOW + timedelta(minutes=1))
    assert ids() == ["a", "c"]
    with ledger.transaction():
        ledger.transition("a", "queued", NOW, "requeued")
        ledger.drop_run("a")
    assert ids() == ["c"]


def test_readers_see_commits_and_cannot_write(tmp_path: Path, ledger: Ledger) -> None:
    with ledger.transaction():
        ledger.add_job(job_request("j", NOW), 1000, 1000, "queue.jsonl:1", NOW)
    with Ledger.open_readonly(tmp_path / "ledger.db") as reader:
        assert reader.job("j").uid == 1000
        with pytest.raises(LedgerError):
            reader.request_cancel("j", NOW)


def test_readonly_open_of_a_missing_ledger_says_so(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger"):
        Ledger.open_readonly(tmp_path / "nope.db")


def test_a_private_ledger_keeps_its_journal_in_memory_and_its_file_to_itself(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path, durable=False, private=True) as ledger:
        with ledger.transaction():
            ledger.add_job(job_request("kept", NOW), 1000, 1000, "queue.jsonl:1", NOW)
        # rollbacks work without a journal on disk: a failed transaction leaves nothing
        with pytest.raises(InvalidTransitionError), ledger.transaction():
            ledger.add_job(job_request("lost", NOW), 1000, 1000, "queue.jsonl:2", NOW)
            ledger.transition("lost", "succeeded", NOW, "impossible")
        assert [job.job_id for job in ledger.jobs()] == ["kept"]
        assert not path.with_name("ledger.db-wal").exists()
        assert not path.with_name("ledger.db-journal").exists()
        other = sqlite3.connect(path, timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("SELECT count(*) FROM jobs").fetchone()
        other.close()
    db = sqlite3.connect(path)  # closed: the file is an ordinary SQLite database again
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert db.execute("SELECT job_id FROM jobs").fetchall() == [("kept",)]
    db.close()
    with Ledger.open_readonly(path) as reader:
        assert reader.job("kept").uid == 1000


def test_a_private_ledger_is_never_durable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durable=False"):
        Ledger.open(tmp_path / "ledger.db", private=True)
    assert not (tmp_path / "ledger.db").exists()


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_export(tmp_path: Path, ledger: Ledger, suffix: str) -> None:
    with ledger.transaction():
        ledger.add_job(job_request("a", NOW), 1000, 1000, "queue.jsonl:1", NOW)
        ledger.add_job(job_request("b", NOW), 1000, 1000, "queue.jsonl:2", NOW)
    out = tmp_path / f"jobs{suffix}"
    assert export_table(ledger, "jobs", out) == 2
    if suffix == ".json":
        rows = json.loads(out.read_text())
    else:
        with out.open(newline="") as lines:
            rows = list(csv.DictReader(lines))
    assert [row["job_id"] for row in rows] == ["a", "b"]
    with pytest.raises(LedgerError, match="cannot export"):
        export_table(ledger, "sqlite_master", out)


@pytest.mark.parametrize("table", EXPORTABLE)
def test_an_empty_table_exports_its_header(tmp_path: Path, ledger: Ledger, table: str) -> None:
    """An empty table's CSV was one blank line: no header for a reader or a spreadsheet."""
    out = tmp_path / f"{table}.csv"
    assert export_table(ledger, table, out) == 0
    db = sqlite3.connect(ledger.path)
    schema = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    db.close()
    with out.open(newline="") as lines:
        reader = csv.DictReader(lines)
        assert reader.fieldnames == schema
        assert list(reader) == []


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_export_holds_one_row_at_a_time(tmp_path: Path, ledger: Ledger, suffix: str) -> None:
    """Export read the whole table into a list first: an outcomes table whose rows carry
    long power curves needed gigabytes of memory for a file it writes row by row."""
    rows, row_bytes = 200, 100_000
    db = sqlite3.connect(ledger.path)
    with db:
        db.executemany(
            "INSERT INTO intensity_samples VALUES (?, ?, 100.0, ?, ?)",
            [("CA-QC", f"2026-03-01T{i // 60:02d}:{i % 60:02d}:00+00:00", "x" * row_bytes,
              NOW.isoformat()) for i in range(rows)],
        )  # fmt: skip
    db.close()
    out = tmp_path / f"samples{suffix}"
    tracemalloc.start()
    try:
        assert export_table(ledger, "intensity_samples", out) == rows
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.stat().st_size > rows * row_bytes
    assert peak < rows * row_bytes / 10  # a few rows at a time, not the table
    if suffix == ".json":
        assert len(json.loads(out.read_text())) == rows


def _no_constant(name: str) -> None:
    raise AssertionError(f"not JSON: {name}")


def test_a_json_export_writes_no_infinity(tmp_path: Path, ledger: Ledger) -> None:
    """A REAL the ledger holds as +-inf (SQLite keeps them; a ledger edited by hand, or written
    by a bug) was exported as ``Infinity``, which no JSON parser but Python's reads: it is
    ``null``, as ``report``, ``jobs`` and ``status`` write a figure not finite."""
    db = sqlite3.connect(ledger.path)
    with db:
        db.executemany(
            "INSERT INTO intensity_samples VALUES ('CA-QC', ?, ?, 'trace', ?)",
            [(f"2026-03-01T0{i}:00:00+00:00", value, NOW.isoformat())
             for i, value in enumerate([float("inf"), -float("inf"), 12.5])],
        )  # fmt: skip
    db.close()
    out = tmp_path / "samples.json"
    assert export_table(ledger, "intensity_samples", out) == 3
    rows = json.loads(out.read_text(), parse_constant=_no_constant)
    assert [row["intensity_g_per_kwh"] for row in rows] == [None, None, 12.5]
