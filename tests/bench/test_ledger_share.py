"""bench.ledger_share: the SQLite time of a bench_replay run, by statement kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.ledger_share import kind_of, main, timed_ledgers
from daemon.ledger import Ledger


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("INSERT INTO jobs (job_id) VALUES (?)", "INSERT INTO jobs"),
        ("insert or replace into outcomes VALUES (?)", "INSERT OR REPLACE INTO outcomes"),
        ("  UPDATE runs SET state = ? WHERE job_id = ?", "UPDATE runs"),
        ("SELECT a, b\n FROM decisions WHERE job_id = ?", "SELECT decisions"),
        ("DELETE FROM queue_files WHERE path = ?", "DELETE FROM queue_files"),
        ("BEGIN IMMEDIATE", "BEGIN"),
        ("COMMIT", "COMMIT"),
        ("SAVEPOINT step", "SAVEPOINT step"),
    ],
)
def test_kind_of_names_the_verb_and_table(sql: str, kind: str) -> None:
    assert kind_of(sql) == kind


@pytest.mark.usefixtures("restore_logging")  # bench_replay configures logging
def test_a_run_counts_every_job_row_and_restores_the_ledger(
    capsys: pytest.CaptureFixture[str],
) -> None:
    open_before = Ledger.open
    ((label, elapsed, sqlite_s, jobs),) = main(
        ["--jobs", "40", "--days", "0.01", "--policy", "run-now"]
    )
    assert label == "run-now" and jobs == 40
    assert 0.0 < sqlite_s < elapsed
    assert Ledger.open == open_before and "open" not in Ledger.__dict__
    out = capsys.readouterr().out
    assert "SQLite alone allows" in out
    assert any(line.lstrip().startswith("INSERT INTO ") for line in out.splitlines())


def test_timed_connection_counts_statements_and_rows(tmp_path: Path) -> None:
    with timed_ledgers() as spent:
        ledger = Ledger.open(tmp_path / "ledger.db", durable=False)
        try:
            ledger._db.executemany(
                "INSERT INTO queue_files (path, inode, byte_offset, line_no) VALUES (?, ?, 0, 0)",
                [("a", 1), ("b", 2)],
            )
            rows = ledger._db.execute("SELECT path FROM queue_files ORDER BY path").fetchall()
        finally:
            ledger.close()
    assert [r[0] for r in rows] == ["a", "b"]  # the wrapped connection still works
    assert spent.statements["INSERT INTO queue_files"] == 1
    assert spent.rows["INSERT INTO queue_files"] == 2
    assert spent.statements["SELECT queue_files"] == 1
    assert spent.total_s >= 0.0
