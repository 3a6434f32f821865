"""``carbond backup``: a consistent, self-contained copy of a ledger another process is writing."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.ledger import Ledger
from daemon.ledger.backup import backup_ledger
from tests.daemon.helpers import job_request

# A writer as the daemon is one: its own process, a job and its first transition per commit.
WRITER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from daemon.ledger import Ledger
from tests.daemon.helpers import job_request
now = datetime(2026, 6, 1, tzinfo=UTC)
with Ledger.open(Path(sys.argv[1])) as ledger:
    print("open", flush=True)
    for i in range(10**9):
        with ledger.transaction():
            ledger.add_job(job_request(f"j{i}", now), 1000, 1000, f"queue.jsonl:{i}", now)
"""


def _rows(path: Path) -> tuple[str, int, int, int]:
    db = sqlite3.connect(path)
    try:
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        jobs = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
        created = db.execute("SELECT count(*) FROM transitions WHERE from_state IS NULL")
        last = db.execute("SELECT max(CAST(substr(job_id, 2) AS INTEGER)) FROM jobs")
        return mode, jobs, created.fetchone()[0], (last.fetchone()[0] or -1) + 1
    finally:
        db.close()


def test_backups_taken_while_another_process_writes_are_whole_commits(tmp_path: Path) -> None:
    ledger = tmp_path / "state" / "ledger.db"
    root = Path(__file__).resolve().parents[3]
    seen = []
    with subprocess.Popen([sys.executable, "-c", WRITER, str(ledger)], cwd=root,
                          stdout=subprocess.PIPE, text=True) as writer:  # fmt: skip
        try:
            assert writer.stdout is not None and writer.stdout.readline() == "open\n"
            for n in range(5):
                time.sleep(0.2)
                done = backup_ledger(ledger, tmp_path / "backup.db")
                mode, jobs, created, last = _rows(done.path)
                # One snapshot: every job with its transition, none missing before the last.
                assert (mode, created, last) == ("delete", jobs, jobs), n
                assert done.jobs == jobs and done.size_bytes == done.path.stat().st_size
                seen.append(jobs)
                assert not (tmp_path / "backup.db-wal").exists()
        finally:
            writer.kill()
    assert seen == sorted(seen) and seen[-1] > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with Ledger.open(tmp_path / "backup.db") as restored:  # the daemon opens it as it is
        assert len(restored.jobs()) == seen[-1]


def _config(tmp_path: Path, state: Path) -> Path:
    config = tmp_path / "carbond.toml"
    config.write_text(f'state_dir = "{state}"\n')
    return config


def test_carbond_backup_prints_what_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    Ledger.open(state / "ledger.db").close()
    config = _config(tmp_path, state)
    backup = tmp_path / "b.db"

    assert main(["backup", "--config", str(config), str(backup), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"ledger": str(state / "ledger.db"), "path": str(backup),
                       "bytes": backup.stat().st_size, "schema_version": printed["schema_version"],
                       "jobs": 0}  # fmt: skip
    assert sorted(p.name for p in state.iterdir()) == ["ledger.db"]  # no -wal, -shm left
    assert main(["backup", "--state-dir", str(state), str(backup)]) == 0
    assert capsys.readouterr().out.startswith(f"backed up {state / 'ledger.db'} to {backup}: ")


def test_carbond_backup_counts_one_job_in_the_singular(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It printed "1 jobs"."""
    state = tmp_path / "state"
    now = datetime(2026, 6, 1, tzinfo=UTC)
    with Ledger.open(state / "ledger.db") as ledger, ledger.transaction():
        ledger.add_job(job_request("j1", now), 1000, 1000, "queue.jsonl:1", now)

    assert main(["backup", "--state-dir", str(state), str(tmp_path / "b.db")]) == 0
    assert capsys.readouterr().out.endswith(", 1 job\n")


@pytest.mark.parametrize(
    ("output", "code", "message"),
    [
        ("state/ledger.db", 1, "state/ledger.db: that is the ledger itself; back it up to another "
         "file"),
        ("state/ledger.db-wal", 1, "that is the ledger itself"),
        (".", 1, ". is a directory: name the backup file (ledger.db)"),
        ("missing/b.db", 1, "missing/b.db: cannot write the backup: No such file or directory"),
    ],
)  # fmt: skip
def test_carbond_backup_refuses_what_it_cannot_write_with_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    output: str,
    code: int,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "state"
    Ledger.open(state / "ledger.db").close()
    before = (state / "ledger.db").read_bytes()

    assert main(["backup", "--state-dir", "state", output]) == code
    err = capsys.readouterr().err
    assert err.startswith("carbond: error: ") and message in err and err.count("\n") == 1
    assert (state / "ledger.db").read_bytes() == before


def test_carbond_backup_without_a_ledger_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backup", "--state-dir", str(tmp_path), str(tmp_path / "b.db")]) == 2
    assert capsys.readouterr().err == (
        f"carbond: error: {tmp_path / 'ledger.db'}: no ledger (has `carbond run` started with "
        "this state_dir?)\n"
    )
    assert not (tmp_path / "b.db").exists()


@pytest.mark.parametrize(
    ("replaced", "expected"),
    [
        (None, 0o600),  # a new file, whatever the umask
        (0o6755, 0o640),  # set-ID and execute bits, world-readable
        (0o4700, 0o600),
        (0o1666, 0o640),
    ],
)
def test_a_backup_is_plain_and_private_whatever_file_it_replaces(
    tmp_path: Path, replaced: int | None, expected: int
) -> None:
    """The backup took the mode of the file it replaced, set-user/group-ID, sticky and
    execute bits included, and others' read and write; a new one got the umask's 0644, so any
    user could read a copy of the whole ledger. It is 0600 now, 0640 where the replaced file
    let its group read it."""
    ledger = tmp_path / "ledger.db"
    Ledger.open(ledger).close()
    backup = tmp_path / "b.db"
    if replaced is not None:
        backup.write_bytes(b"an older backup")
        backup.chmod(replaced)
        assert stat.S_IMODE(backup.stat().st_mode) == replaced  # the premise
    old = os.umask(0o022)
    try:
        backup_ledger(ledger, backup)
    finally:
        os.umask(old)
    assert stat.S_IMODE(backup.stat().st_mode) == expected
