"""``carbond doctor``'s health check says how long each problem has lasted: a ledger locked
by another process fails every step the same way (one problem, its first failure kept as
``since`` in ``health.json``), and "database is locked" alone did not say for how long, nor
what can hold the lock."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.doctor.running_daemon import describe_health
from daemon.ledger import Ledger, LedgerError
from daemon.ledger import base as ledger_base
from daemon.settings import RegionSettings, Settings
from daemon.supervision.health import HEALTH_NAME, Health

T0 = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
REGIONS = (RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("T4",)),)


def test_a_write_that_waited_out_the_lock_names_what_may_hold_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_base, "BUSY_TIMEOUT_S", 0.5)
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        ledger.stop_waiting_when(threading.Event().is_set)  # as carbond run: never stopping
        other = sqlite3.connect(ledger.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(LedgerError) as caught, ledger.transaction():
            pass
        other.close()
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'ledger.db'}: database is locked: another process")
    assert "for 0.5 s (a lock on ledger.db-shm, an sqlite3 shell's write transaction" in message
    assert '"Who can read the ledger"' in message


def test_doctor_says_since_when_a_step_has_failed_the_same_way(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, regions=REGIONS)
    message = "LedgerError: ledger.db: database is locked: another process held a lock"
    health = Health()
    health.set("step:ingest", message, T0)
    health.set("step:ingest", message, T0 + timedelta(seconds=10))  # the next failure
    health.write(tmp_path / HEALTH_NAME, T0 + timedelta(seconds=10))
    with Ledger.open(tmp_path / "ledger.db"):  # this process is the running daemon
        status, detail = describe_health(settings, T0 + timedelta(seconds=20))
    assert status == "fail"
    assert detail == f"step:ingest (for 20 s, since {T0.isoformat()}): {message}"
