"""A user's command reading a ledger no daemon had open (no ``-wal``: opened immutable, without
locks) while a daemon starts and writes it. The daemon's WAL writes leave the file as it was:
the command reads the ledger as it was when it began. Its checkpoint writes the file in place,
under reads that hold no lock: until 2026-12-07 the command then read a mix of both, silently
(a job found that did not exist when it began, beside a count from before) or failing with
"database disk image is malformed". Now it fails saying what happened and to run it again.

Two real processes on one real ledger file: this one reads as the CLI does
(``Ledger.open_readonly``), a second one writes as a starting daemon does (``Ledger.open``).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.ledger import Ledger, LedgerError, UnknownJobError
from tests.daemon.helpers import job_request

NOW = datetime(2026, 1, 1, tzinfo=UTC)
JOBS = 2000
CHANGED = r"ledger\.db: the daemon started and wrote the ledger while this command read it"

# A daemon starting on the ledger: its writes (every job replaced by a new one) go to its WAL;
# "checkpoint" on stdin copies them into the file, as its automatic checkpoints do; it stays
# up (its close would checkpoint too) until stdin closes.
_DAEMON = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from daemon.ledger import Ledger
from tests.daemon.helpers import job_request
now = datetime(2026, 1, 2, tzinfo=UTC)
ledger = Ledger.open(Path(sys.argv[1]))
ledger._exec("PRAGMA wal_autocheckpoint = 0")
with ledger.transaction():
    ledger._exec("DELETE FROM transitions")
    ledger._exec("DELETE FROM jobs")
    ledger.add_jobs([(job_request(f"new{i:05d}", now), 1000, 1000, "q:1", now)
                     for i in range(int(sys.argv[2]))])
print("written", flush=True)
for line in sys.stdin:
    ledger._exec("PRAGMA wal_checkpoint(TRUNCATE)")
    print("checkpointed", flush=True)
"""


class _Daemon:
    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _DAEMON, str(path), str(JOBS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self._said() == "written"

    def _said(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def checkpoint(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("checkpoint\n")
        self.proc.stdin.flush()
        assert self._said() == "checkpointed"

    def stop(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0
        self.proc.stdout.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A ledger of JOBS jobs ``old*`` that no daemon has open (its WAL checkpointed, removed)."""
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger, ledger.transaction():
        ledger.add_jobs([(job_request(f"old{i:05d}", NOW), 1000, 1000, "q:1", NOW)
                         for i in range(JOBS)])  # fmt: skip
    assert not path.with_name("ledger.db-wal").exists()
    return path


@pytest.fixture
def daemon(path: Path) -> Iterator[list[_Daemon]]:
    started: list[_Daemon] = []
    yield started
    for one in started:
        one.stop()


def test_a_command_whose_reads_span_a_daemon_s_checkpoint_fails_and_says_why(
    path: Path, daemon: list[_Daemon]
) -> None:
    ledger = Ledger.open_readonly(path)
    try:
        assert ledger.counts_by_state() == {"queued": JOBS}
        daemon.append(_Daemon(path))
        with pytest.raises(UnknownJobError):  # the daemon's writes are in its WAL, not read
            ledger.job("new00001")
        assert ledger.job("old00001").state == "queued"  # the ledger as the command began
        daemon[0].checkpoint()
        with pytest.raises(LedgerError, match=CHANGED):  # was: answered from a mix of pages
            ledger.job("new00001")
    finally:
        ledger.close()


def test_a_read_row_by_row_across_the_checkpoint_fails_and_says_why(
    path: Path, daemon: list[_Daemon]
) -> None:
    with pytest.raises(LedgerError, match=CHANGED), Ledger.open_readonly(path) as ledger:
        _, rows = ledger.table_rows("jobs")
        first = next(rows)
        daemon.append(_Daemon(path))
        daemon[0].checkpoint()
        assert [first, *rows]  # was: "database disk image is malformed", or a mix


def test_a_checkpoint_after_the_last_read_fails_the_command_as_it_ends(
    path: Path, daemon: list[_Daemon]
) -> None:
    """Its output is held until the ledger is closed (``held_stdout``): none is printed."""
    with pytest.raises(LedgerError, match=CHANGED), Ledger.open_readonly(path) as ledger:
        assert ledger.counts_by_state() == {"queued": JOBS}
        daemon.append(_Daemon(path))
        daemon[0].checkpoint()


def test_the_next_command_reads_what_the_daemon_wrote(path: Path, daemon: list[_Daemon]) -> None:
    with Ledger.open_readonly(path) as ledger:
        ledger.counts_by_state()
    daemon.append(_Daemon(path))
    with Ledger.open_readonly(path) as ledger:  # the daemon's WAL is there: read with it
        assert ledger.job("new00001").state == "queued"
        daemon[0].checkpoint()  # a checkpoint under a reader that holds its locks: no error
        assert ledger.counts_by_state() == {"queued": JOBS}
        with pytest.raises(UnknownJobError):
            ledger.job("old00001")
