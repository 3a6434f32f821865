"""``[ledger] private = true``: the ledger and its ``-wal``/``-shm`` made the daemon's alone
(:mod:`daemon.ledger.privacy`); the real other user's lock is in
tests/daemon/cli/test_run_private_ledger.py."""

from __future__ import annotations

import os
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path

from daemon.ledger import Ledger
from daemon.ledger.privacy import ledger_files, make_private, open_to_others
from tests.daemon.helpers import job_request

NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


def _modes(path: Path) -> dict[str, int]:
    return {f.name: stat.S_IMODE(f.stat().st_mode) for f in ledger_files(path) if f.exists()}


def test_a_new_ledger_and_the_files_sqlite_makes_beside_it_are_private(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    assert make_private(path) == []
    with Ledger.open(path) as ledger:
        ledger.add_job(job_request("j", NOW), 1000, 1000, "queue.jsonl:1", NOW)
        assert _modes(path) == {"ledger.db": 0o600, "ledger.db-wal": 0o600, "ledger.db-shm": 0o600}
    assert open_to_others(path) == []


def test_a_readable_ledger_moves_to_fresh_private_files_with_every_commit(
    tmp_path: Path,
) -> None:
    """Its commits still in the -wal (a daemon that was killed) are kept; a descriptor opened
    while it was readable sees the old file, not the ledger the daemon goes on writing."""
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        ledger.add_job(job_request("in-wal", NOW), 1000, 1000, "queue.jsonl:1", NOW)
        for file in ledger_files(tmp_path / "ledger.db")[:2]:  # as a SIGKILL leaves them
            shutil.copy(file, crashed / file.name)
    path = crashed / "ledger.db"
    assert path.with_name("ledger.db-wal").stat().st_size > 0
    for file in ledger_files(path)[:2]:
        file.chmod(0o644)
    before = os.open(path, os.O_RDONLY)
    try:
        found = make_private(path)
        assert found == [(path, 0o644), (path.with_name("ledger.db-wal"), 0o644)]
        assert os.fstat(before).st_ino != path.stat().st_ino
    finally:
        os.close(before)
    assert _modes(path) == {"ledger.db": 0o600}
    assert make_private(path) == []  # already private: nothing to do
    with Ledger.open(path) as ledger:
        assert ledger.job("in-wal").job_id == "in-wal"
        ledger.add_job(job_request("after", NOW), 1000, 1000, "queue.jsonl:2", NOW)
        assert set(_modes(path).values()) == {0o600}
    assert [p.name for p in crashed.iterdir() if p.name.startswith(".")] == []
