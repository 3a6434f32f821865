"""A write waiting for another connection's lock on the ledger: it waits as long as before
(``BUSY_TIMEOUT_S``) and then gets the lock, but gives up within a slice once the daemon is
stopping (``Connection.stop_waiting_when``), having written nothing."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.ledger import Ledger
from daemon.ledger.base import LockWaitStoppedError

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
