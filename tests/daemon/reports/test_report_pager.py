"""``carbond report`` into a pager: the ledger's read transaction ends before stdout is
written, so a reader that is slow (``less`` left open) never holds back the daemon's WAL
checkpoints."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.daemon.reports.ledgers import ledger_copies

ROOT = Path(__file__).resolve().parents[3]


def test_a_report_nobody_reads_yet_does_not_hold_the_ledger_open(
    demo_state: Path, tmp_path: Path
) -> None:
    """The report held its snapshot (a read transaction) while it wrote each row to stdout:
    piped into a pager that sat on its first page, it kept the daemon's ``wal_checkpoint``
    from resetting the WAL for as long as the pager stayed open. Now it reads everything,
    closes the ledger, then writes: once its first byte is out, a checkpoint completes."""
    jobs = ledger_copies(demo_state, tmp_path, 100)  # a JSON report well past a pipe's 64 KiB
    daemon = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)  # the daemon's
    try:
        assert daemon.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        daemon.execute("PRAGMA wal_autocheckpoint=0")
        daemon.execute("CREATE TABLE daemon_writes (n INTEGER)")  # frames in the WAL
        (tmp_path / "carbond.toml").write_text("")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        report = subprocess.Popen(
            [sys.executable, "-m", "daemon", "report", "--state-dir", str(tmp_path),
             "--until", "2100-01-01", "--by", "job", "--json",
             "--config", str(tmp_path / "carbond.toml")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path, bufsize=0,
        )  # fmt: skip
        try:
            assert report.stdout is not None
            first = report.stdout.read(1)  # the pager shows its first page, and waits
            assert first == b"{", report.communicate()[1]
            daemon.execute("INSERT INTO daemon_writes VALUES (1)")  # the daemon goes on
            daemon.execute("PRAGMA busy_timeout=200")
            busy, _, _ = daemon.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert busy == 0  # no reader left in the WAL
            rest, err = report.communicate(timeout=60)
            assert report.returncode == 0, err
        finally:
            if report.poll() is None:
                report.kill()
            report.communicate()  # closes its pipes
    finally:
        daemon.close()
    assert (first + rest).count(b'"key": ') == jobs + 1  # every job, then the totals
