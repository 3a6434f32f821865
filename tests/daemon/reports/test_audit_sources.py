"""``carbond report --audit``'s "Data sources": the intensity samples that priced the period's
jobs, traced by each job's run, not the samples taken within the period."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from tests.daemon.reports.conftest import Run


def _sources(statement: str) -> list[list[str]]:
    """The Data sources table's rows, cells stripped, heading and rule left out."""
    section = statement.split("## Data sources\n\n", 1)[1].split("\n## ", maxsplit=1)[0]
    table = [line for line in section.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in table[1:]]


def test_a_job_that_started_before_the_period_lists_the_samples_that_priced_it(
    demo_state: Path, carbond: Run
) -> None:
    """A job that started before ``--since`` and finished after it is in the statement, but the
    table listed only the samples taken within the period: the sample in force when it started
    and those over its run before ``--since`` priced grams no listed source accounted for. The
    table lists, per zone, the sample in force at each job's start and those taken while it ran
    (as the daemon priced it: ``realised_from_samples``)."""
    db = sqlite3.connect(demo_state / "ledger.db")
    job_id, zone, started, finished = db.execute(
        "SELECT job_id, zone, started_at, finished_at FROM outcomes"
        " ORDER BY julianday(finished_at) - julianday(started_at) DESC LIMIT 1"
    ).fetchone()
    end = datetime.fromisoformat(finished)
    since = (end - timedelta(seconds=1)).isoformat()
    until = (end + timedelta(seconds=1)).isoformat()
    others = db.execute(
        "SELECT count(*) FROM outcomes WHERE finished_at >= ? AND finished_at < ?", (since, until)
    ).fetchone()[0]
    assert others == 1 and started < since  # one job in the period, started before it
    in_force = db.execute(
        "SELECT at, source FROM intensity_samples WHERE zone = ? AND at <= ?"
        " ORDER BY at DESC LIMIT 1",
        (zone, started),
    ).fetchone()
    during = db.execute(
        "SELECT at, source FROM intensity_samples WHERE zone = ? AND at > ? AND at < ? ORDER BY at",
        (zone, started, finished),
    ).fetchall()
    db.close()
    used = [in_force, *during]
    text = carbond("report", "--state-dir", str(demo_state), "--audit", "--since", since,
                   "--until", until)  # fmt: skip
    rows = _sources(text)
    assert [row[0] for row in rows] == [zone] * len(rows), (job_id, rows)
    assert sum(int(row[2]) for row in rows) == len(used)
    assert min(row[3] for row in rows) == in_force[0]
    assert max(row[4] for row in rows) == used[-1][0]
    assert {row[1] for row in rows} == {source for _, source in used}
    assert "that priced the period's jobs" in text.split("## Data sources", 1)[1]
