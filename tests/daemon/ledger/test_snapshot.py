"""``Ledger.snapshot()``: reads that see one state of the ledger, and only reads.

A write inside its read transaction would not wait on another process's lock as every other
write does (a statement inside a transaction is not tried again when busy), so a snapshot is
read-only for its span: a write there fails and says so, and nothing of it is made.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.ledger import Ledger, LedgerError, UnknownJobError
from tests.daemon.helpers import job_request

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _add(ledger: Ledger, job_id: str) -> None:
    ledger.add_jobs([(job_request(job_id, NOW), 1000, 1000, "q:1", NOW)])


def test_a_write_inside_a_snapshot_fails_and_writes_nothing(tmp_path: Path) -> None:
    """It was made (committed as the snapshot ended), without the wait on another process's
    lock a write gets elsewhere."""
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        _add(ledger, "before")
        with (
            pytest.raises(LedgerError, match=r"a write inside Ledger\.snapshot\(\), which is "
                          r"read-only: write in Ledger\.transaction\(\)"),
            ledger.snapshot(),
        ):  # fmt: skip
            assert ledger.counts_by_state() == {"queued": 1}  # reads as ever
            _add(ledger, "inside")
        with pytest.raises(UnknownJobError):
            ledger.job("inside")
        _add(ledger, "after")  # the connection writes again once the snapshot ended
        with ledger.transaction(), ledger.snapshot():  # the caller's write transaction
            _add(ledger, "in-transaction")
        assert ledger.counts_by_state() == {"queued": 3}


def test_a_read_only_view_stays_read_only_after_a_snapshot(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        _add(ledger, "a")
    with Ledger.open_readonly(tmp_path / "ledger.db") as view:
        with view.snapshot():
            assert view.job("a").state == "queued"
        with pytest.raises(LedgerError, match="readonly") as raised:
            _add(view, "b")
        assert "snapshot" not in str(raised.value)
