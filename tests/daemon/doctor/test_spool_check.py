"""With ``[ledger] private = true``, ``carbond doctor``'s ``queue`` line fails on users' spool
files (``queue.d/*.jsonl``) other users can read, naming each (or the first few and a count)
with its owner, mode and the ``chmod`` that makes it private: until 2026-12-07 it named only
a readable ``queue.jsonl``, and passed a readable spool file, whose queued jobs' argv and cwd
every user could read though the ledger hides them."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from daemon.ledger import Ledger
from daemon.queue import QUEUE_NAME, SPOOL_DIR
from daemon.queue.files import append_line
from daemon.queue.ingest import Queue
from daemon.settings import load_settings
from tests.daemon.cli.private_config import write_config
from tests.daemon.doctor.doctor_setup import run_doctor

UID = os.getuid()
LINE = {"model": "llama-1b", "argv": ["/bin/true", "--secret"]}


pytestmark = pytest.mark.usefixtures("usual_umask")


def _config(tmp_path: Path, private: bool) -> tuple[Path, Path]:
    """``(config, queue.d)`` of a state dir its daemon set up (queue built from the config)."""
    state = tmp_path / "state"
    config = write_config(tmp_path, state, private)
    with Ledger.open(state / "ledger.db") as ledger:
        Queue.from_settings(load_settings(config), ledger).prepare()
    return config, state / SPOOL_DIR


def _spool_file(spool: Path, name: str) -> Path:
    """A spool file its owner made before the ledger was private (0644 under umask 022)."""
    path = spool / name
    append_line(path, LINE, uid=UID, create_mode=0o644)
    return path


def _owner() -> str:
    try:
        return f"uid {UID} ({pwd.getpwuid(UID).pw_name})"
    except KeyError:
        return f"uid {UID}"


def test_a_spool_file_others_can_read_fails_the_queue_line_when_private(tmp_path: Path) -> None:
    config, spool = _config(tmp_path, private=True)
    path = _spool_file(spool, f"{UID}.jsonl")

    code, checks = run_doctor(config)

    assert code == 1
    assert checks["queue"].startswith("fail: ")
    assert checks["queue"].endswith(
        f"; 1 spool file(s) readable by other users, though the ledger is private: "
        f"{SPOOL_DIR}/{UID}.jsonl (owner {_owner()}, mode 0644); every job queued there shows "
        f"its argv and cwd; `chmod 600 {path}` makes it private (a reader who opened one "
        "before keeps it)"
    ), checks["queue"]
    path.chmod(0o600)
    assert run_doctor(config)[1]["queue"].startswith("pass: ")


def test_a_readable_spool_file_passes_when_the_ledger_is_not_private(tmp_path: Path) -> None:
    config, spool = _config(tmp_path, private=False)
    _spool_file(spool, f"{UID}.jsonl")

    assert run_doctor(config)[1]["queue"].startswith("pass: ")


def test_many_readable_spool_files_are_counted_past_the_first_three(tmp_path: Path) -> None:
    config, spool = _config(tmp_path, private=True)
    names = [f"{UID}.jsonl", *(f"{UID}.{n}.jsonl" for n in range(1, 5))]
    for name in names:
        _spool_file(spool, name)
    (spool / names[1]).chmod(0o600)  # private already: not counted

    queue = run_doctor(config)[1]["queue"]

    assert "4 spool file(s) readable by other users" in queue, queue
    shown = sorted(n for n in names if n != names[1])
    assert all(f"{SPOOL_DIR}/{n} (owner" in queue for n in shown[:3])
    assert f"{SPOOL_DIR}/{shown[3]}" not in queue and " and 1 more;" in queue
    assert (
        f"`find {spool} -type f -name '*.jsonl' -perm /044 ! -perm /022 -exec chmod 600 {{}} +`"
        in queue
    )


def test_spool_files_are_checked_before_queue_jsonl_exists(tmp_path: Path) -> None:
    """tmpfiles creates ``queue.d`` at install; users may submit before the daemon's first
    start creates ``queue.jsonl``: the line passed then without looking at ``queue.d``."""
    config, spool = _config(tmp_path, private=True)
    (spool.parent / QUEUE_NAME).unlink()
    _spool_file(spool, f"{UID}.jsonl")

    queue = run_doctor(config)[1]["queue"]

    assert queue.startswith("fail: ") and "not created yet" in queue
    assert f"{SPOOL_DIR}/{UID}.jsonl (owner {_owner()}, mode 0644)" in queue


def test_a_symlink_in_queue_d_is_not_followed(tmp_path: Path) -> None:
    config, spool = _config(tmp_path, private=True)
    target = tmp_path / "readable.jsonl"
    target.write_text("{}\n")
    (spool / f"{UID}.jsonl").symlink_to(target)

    queue = run_doctor(config)[1]["queue"]

    assert "is not a regular file: ignored" in queue and "readable by other users" not in queue


def test_a_planted_spool_file_is_named_as_planted_not_counted_readable(tmp_path: Path) -> None:
    """The daemon ignores a file named for another uid: its lines are nobody's queued jobs."""
    config, spool = _config(tmp_path, private=True)
    _spool_file(spool, f"{UID + 1}.jsonl")

    queue = run_doctor(config)[1]["queue"]

    assert "named for uid" in queue and "readable by other users" not in queue, queue
