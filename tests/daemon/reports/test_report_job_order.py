"""``report --by job`` lists jobs in natural id order (``r2`` before ``r10``), and a job whose
id is ``TOTAL`` never reads as the totals row."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

from daemon.natural_order import natural_key
from daemon.reports.lines import in_order
from tests.daemon.reports.conftest import Run

IDS = ("r10", "TOTAL", "r2", "r11", "r1", "r02", "r9x", "a.1", "a-1", "ab")
NATURAL = ["TOTAL", "a-1", "a.1", "ab", "r1", "r02", "r2", "r9x", "r10", "r11"]


def _renamed(state: Path, into: Path) -> Path:
    """``state``'s ledger at ``into`` with its first finished job there again as each of
    :data:`IDS` (its other jobs gone)."""
    shutil.copy(state / "ledger.db", into / "ledger.db")
    db = sqlite3.connect(into / "ledger.db")
    with db:
        (first,) = db.execute("SELECT job_id FROM outcomes ORDER BY job_id LIMIT 1").fetchone()
        for table in ("jobs", "outcomes"):
            names = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
            values = ", ".join("?" if n == "job_id" else n for n in names)
            for job_id in IDS:
                db.execute(
                    f"INSERT INTO {table} ({', '.join(names)}) SELECT {values} FROM {table}"
                    " WHERE job_id = ?",
                    (job_id, first),
                )
        marks = ",".join("?" * len(IDS))
        db.execute(f"DELETE FROM outcomes WHERE job_id NOT IN ({marks})", IDS)
    db.close()
    return into


def test_report_by_job_sorts_ids_naturally_and_marks_a_job_named_total(
    demo_state: Path, tmp_path: Path, carbond: Run
) -> None:
    """Ids sorted as text read r1, r10, r11, r2; and a job ``TOTAL``'s CSV row read exactly as
    the totals row. Now r1, r2, r10, r11, and the job's group cell reads ``'TOTAL`` in CSV,
    Markdown and the table (as a formula-like cell is marked), JSON keeping it as stored."""
    state = _renamed(demo_state, tmp_path)
    args = ("report", "--state-dir", str(state), "--until", "2100-01-01", "--by", "job")
    report = json.loads(carbond(*args, "--json"))
    assert [row["key"] for row in report["rows"]] == NATURAL
    assert report["totals"]["jobs"] == len(IDS)
    rows = list(csv.reader(io.StringIO(carbond(*args, "--format", "csv"))))
    keys = [row[0] for row in rows[1:]]
    assert keys == ["'TOTAL", *NATURAL[1:], "TOTAL"]  # the last row is the only TOTAL
    assert rows[-1][1] == str(len(IDS))
    md = carbond(*args, "--format", "md").splitlines()
    assert [line.split(" | ")[0] for line in md if line.startswith("| ")][1:] == [
        f"| {key}" for key in keys
    ]
    table = carbond(*args, "--format", "table")
    assert table.count(" TOTAL ") == 1 and table.count(" 'TOTAL ") == 1


def test_groups_are_in_natural_order_unknown_last() -> None:
    assert in_order(["node10", None, "node2", "node1", "node2"]) == [
        "node1", "node2", "node10", None,
    ]  # fmt: skip
    assert sorted(IDS, key=lambda i: (natural_key(i), i)) == NATURAL
    assert natural_key("x007") == natural_key("x7") < natural_key("x10") < natural_key("xa")


REGIONS = ("TOTAL", "'TOTAL", "=x", "'=x", "''")


def test_no_two_groups_read_alike_nor_as_the_totals_row(
    demo_state: Path, tmp_path: Path, carbond: Run
) -> None:
    """A group ``TOTAL`` read ``'TOTAL`` in CSV, Markdown and the table, and so did a group
    named ``'TOTAL``; a group ``=x`` read ``'=x`` in CSV (a formula marked), as ``'=x`` did.
    A name that begins with ``'`` now gets one more: dropping one leading ``'`` gives every
    group's name as recorded (JSON's), and the last row is the only ``TOTAL``."""
    shutil.copy(demo_state / "ledger.db", tmp_path / "ledger.db")
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:
        jobs = [r[0] for r in db.execute("SELECT job_id FROM outcomes ORDER BY job_id")]
        for i, job_id in enumerate(jobs):
            region = REGIONS[i % len(REGIONS)]
            db.execute("UPDATE outcomes SET region = ? WHERE job_id = ?", (region, job_id))
    db.close()
    args = ("report", "--state-dir", str(tmp_path), "--until", "2100-01-01", "--by", "region")
    recorded = [row["key"] for row in json.loads(carbond(*args, "--json"))["rows"]]
    assert sorted(recorded) == sorted(REGIONS)
    rows = list(csv.reader(io.StringIO(carbond(*args, "--format", "csv"))))
    keys = [row[0] for row in rows[1:-1]]
    assert len(set(keys)) == len(keys) and rows[-1][0] == "TOTAL" and "TOTAL" not in keys
    assert [k.removeprefix("'") for k in keys] == recorded
    md = carbond(*args, "--format", "md").splitlines()
    cells = [line.split(" | ")[0].removeprefix("| ") for line in md if line.startswith("| ")]
    assert [c.removeprefix("'") for c in cells[1:-1]] == recorded and cells[-1] == "TOTAL"
