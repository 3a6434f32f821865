"""``carbond run`` stops on SIGTERM while its ledger write waits on another process's lock.

A lock on the ledger that another process holds (a user's shared ``fcntl`` lock on byte 120
of ``ledger.db-shm``, docs/operations.md "Who can read the ledger"; an ``sqlite3`` shell in a
write transaction) makes every write of the daemon wait for it. SQLite waits in C, where the
SIGTERM handler cannot run: until 2026-12-07 the daemon stopped only when that wait timed out
(10 s a write), a second SIGTERM did not force it (both arrived during one wait), and
systemd's stop waited on the lock. Now the wait gives up at the stop, nothing written, and the
next daemon ingests the job the stopped one could not. The step given up so is logged
``step_abandoned`` (until 2026-12-07: ``step_failed``, an error with a traceback).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.cli.real_daemon import CONFIG, Daemon, free_port, state_of, submit, until

pytestmark = pytest.mark.slow

# A second process holding a lock on the ledger, until its stdin closes.
LOCKERS = {
    "shm byte 120": """
import fcntl, os, sys
fd = os.open(sys.argv[1] + "-shm", os.O_RDONLY)
fcntl.lockf(fd, fcntl.LOCK_SH, 1, 120)
print("held", flush=True)
sys.stdin.read()
""",
    "write transaction": """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("held", flush=True)
sys.stdin.read()
""",
}


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Daemon]]:
    daemons: list[Daemon] = []
    yield daemons
    for daemon in daemons:
        daemon.close()


@pytest.mark.parametrize("holder", sorted(LOCKERS))
def test_sigterm_stops_a_daemon_whose_write_waits_on_a_lock_and_nothing_is_lost(
    tmp_path: Path, started: list[Daemon], holder: str
) -> None:
    state = tmp_path / "state"
    config = tmp_path / "carbond.toml"
    config.write_text(CONFIG.format(state=state, port=free_port()))
    first = Daemon(tmp_path, config)
    started.append(first)
    first.expect("READY=1")  # its notify socket is read from now on, as systemd does
    submit(state, "before", [sys.executable, "-c", "pass"])
    until("the first job", lambda: state_of(state, "before") == "succeeded")

    with subprocess.Popen(
        [sys.executable, "-c", LOCKERS[holder], str(state / "ledger.db")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as locker:  # fmt: skip
        assert locker.stdout is not None
        assert locker.stdout.readline() == "held\n"
        submit(state, "locked-out", [sys.executable, "-c", "pass"])
        time.sleep(1.0)  # the ingest's write waits on the lock (SQLite gives up after 10 s)
        sent = time.monotonic()
        first.proc.send_signal(signal.SIGTERM)
        try:
            code = first.proc.wait(timeout=4)
        except subprocess.TimeoutExpired:
            code = None
        waited_s = time.monotonic() - sent
        assert locker.stdin is not None
        locker.stdin.close()  # the lock goes with the locker
    assert code == 0, f"carbond run still up {waited_s:.1f} s after SIGTERM with {holder} held"
    assert waited_s < 4
    first.expect("STOPPING=1", timeout_s=5)  # sent before it exited
    assert state_of(state, "locked-out") is None  # not ingested: its write was given up
    # The step given up at the stop is logged as that, quietly: no error, no traceback.
    events = [json.loads(line) for line in (tmp_path / "daemon.log").read_text().splitlines()]
    assert [e for e in events if e["event"] == "step_failed"] == []
    (abandoned,) = [e for e in events if e["event"] == "step_abandoned"]
    assert abandoned["step"] == "ingest" and abandoned["level"] == "info"
    assert "exception" not in abandoned
    assert abandoned["reason"] == (
        f"{state / 'ledger.db'}: gave up waiting for another process's lock on the ledger: "
        "the daemon is stopping (nothing of this write was made)"
    )
    # ... and is no problem: health.json names none (until 2026-12-07: step:ingest, failing)
    assert json.loads((state / "health.json").read_text())["problems"] == {}

    second = Daemon(tmp_path, config)
    started.append(second)
    second.expect("READY=1")
    until("the job the stopped daemon could not ingest",
           lambda: state_of(state, "locked-out") == "succeeded")  # fmt: skip
    second.proc.send_signal(signal.SIGTERM)
    assert second.proc.wait(timeout=30) == 0
    log = (tmp_path / "daemon.log").read_text()
    assert log.count('"queue_ingested"') == 2  # each job ingested once, by one daemon
