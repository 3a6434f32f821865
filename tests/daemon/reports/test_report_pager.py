"""``carbond report`` into a pager: the ledger's read transaction ends before stdout is
written, so a reader that is slow (``less`` left open) never holds back the daemon's WAL
checkpoints."""

from __future__ import annotations

from pathlib import Path

from tests.daemon.pager import output_under_a_writing_daemon
from tests.daemon.reports.ledgers import ledger_copies


def test_a_report_nobody_reads_yet_does_not_hold_the_ledger_open(
    demo_state: Path, tmp_path: Path
) -> None:
    """The report held its snapshot (a read transaction) while it wrote each row to stdout:
    piped into a pager that sat on its first page, it kept the daemon's ``wal_checkpoint``
    from resetting the WAL for as long as the pager stayed open. Now it reads everything,
    closes the ledger, then writes: once its first byte is out, a checkpoint completes."""
    jobs = ledger_copies(demo_state, tmp_path, 100)  # a JSON report well past a pipe's 64 KiB
    (tmp_path / "carbond.toml").write_text("")
    argv = ("report", "--until", "2100-01-01", "--by", "job", "--json")
    output = output_under_a_writing_daemon(tmp_path, argv, b"{")
    assert output.count(b'"key": ') == jobs + 1  # every job, then the totals
