"""A write waiting for another connection's lock on the ledger: it waits as long as before
(``BUSY_TIMEOUT_S``) and then gets the lock, but gives up within a slice once the daemon is
stopping (``Connection.stop_waiting_when``), having written nothing. Rows written together
(``executemany``) outside a transaction wait the same way, all or none; a read already begun
finds no lock in its way."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.ledger import Ledger
from daemon.ledger.errors import LockWaitStoppedError
from tests.daemon.helpers import job_request

NOW = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "ledger.db") as opened:
        yield opened


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another connection in a write transaction (an ``sqlite3`` shell's ``BEGIN IMMEDIATE``)."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


def _samples(path: Path) -> int:
    with sqlite3.connect(path) as db:
        count: int = db.execute("SELECT count(*) FROM intensity_samples").fetchone()[0]
    return count


@pytest.mark.parametrize("inside", [True, False], ids=["transaction", "autocommit"])
def test_a_write_waits_for_a_lock_released_within_the_timeout(ledger: Ledger, inside: bool) -> None:
    stopping = threading.Event()
    ledger.stop_waiting_when(stopping.is_set)
    other = _hold_write_lock(ledger.path)
    threading.Timer(0.6, other.rollback).start()  # longer than SQLite's 0.1 s slices
    started = time.monotonic()
    if inside:
        with ledger.transaction():
            ledger.record_intensity("CA-QC", NOW, 31.0, "test", NOW)
    else:
        ledger.record_intensity("CA-QC", NOW, 31.0, "test", NOW)
    assert 0.5 < time.monotonic() - started < 5
    other.close()
    assert _samples(ledger.path) == 1


@pytest.mark.parametrize("inside", [True, False], ids=["transaction", "autocommit"])
def test_a_write_waiting_for_a_lock_gives_up_when_the_daemon_stops(
    ledger: Ledger, inside: bool
) -> None:
    stopping = threading.Event()
    ledger.stop_waiting_when(stopping.is_set)
    other = _hold_write_lock(ledger.path)
    threading.Timer(0.3, stopping.set).start()
    started = time.monotonic()
    with pytest.raises(LockWaitStoppedError, match=r"ledger\.db: gave up waiting .* stopping"):
        if inside:
            with ledger.transaction():
                ledger.record_intensity("CA-QC", NOW, 31.0, "test", NOW)
        else:
            ledger.record_intensity("CA-QC", NOW, 31.0, "test", NOW)
    assert time.monotonic() - started < 1.5  # SQLite alone waits 10 s
    other.rollback()
    other.close()
    assert _samples(ledger.path) == 0
    ledger.record_intensity("CA-QC", NOW, 31.0, "test", NOW)  # the ledger goes on
    assert _samples(ledger.path) == 1


def _jobs(path: Path) -> int:
    with sqlite3.connect(path) as db:
        count: int = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    return count


def _add_two_jobs(ledger: Ledger) -> None:
    """Two jobs in one ``add_jobs``: its rows written with ``executemany``, outside a
    transaction (as a test or a tool adds them)."""
    ledger.add_jobs([(job_request(job_id, NOW), 1000, 1000, "queue.jsonl:1", NOW)
                     for job_id in ("a", "b")])  # fmt: skip


def test_rows_written_together_outside_a_transaction_wait_for_a_lock(ledger: Ledger) -> None:
    # Until 2026-12-07 executemany was outside the sliced wait: with the daemon's 0.1 s
    # slices it failed "database is locked" after 0.1 s instead of waiting for the lock.
    ledger.stop_waiting_when(threading.Event().is_set)
    other = _hold_write_lock(ledger.path)
    threading.Timer(0.6, other.rollback).start()
    started = time.monotonic()
    _add_two_jobs(ledger)
    assert 0.5 < time.monotonic() - started < 5
    other.close()
    assert _jobs(ledger.path) == 2


def test_rows_written_together_give_up_at_the_stop_and_write_none(ledger: Ledger) -> None:
    stopping = threading.Event()
    ledger.stop_waiting_when(stopping.is_set)
    other = _hold_write_lock(ledger.path)
    threading.Timer(0.3, stopping.set).start()
    with pytest.raises(LockWaitStoppedError, match=r"ledger\.db: gave up waiting .* stopping"):
        _add_two_jobs(ledger)
    other.rollback()
    other.close()
    assert _jobs(ledger.path) == 0
    _add_two_jobs(ledger)  # the ledger goes on (no transaction left open: they are committed)
    assert _jobs(ledger.path) == 2


def test_a_read_begun_outside_a_transaction_reads_on_past_another_write(
    ledger: Ledger,
) -> None:
    """Rows read as they are iterated (``table_rows``) need no retry: the first step began
    the read, and the later ones read its snapshot while another connection holds the
    write lock and commits."""
    ledger.stop_waiting_when(threading.Event().is_set)
    _add_two_jobs(ledger)
    _, rows = ledger.table_rows("jobs")
    first = next(rows)
    other = _hold_write_lock(ledger.path)
    other.execute("DELETE FROM transitions")
    other.execute("DELETE FROM jobs")
    other.execute("COMMIT")
    other.execute("BEGIN IMMEDIATE")
    assert [first[0], *(row[0] for row in rows)] == ["a", "b"]  # the snapshot it began
    other.rollback()
    other.close()
    assert _jobs(ledger.path) == 0
