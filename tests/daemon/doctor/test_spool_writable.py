"""``carbond doctor``'s ``queue`` line fails on a spool file (``queue.d/*.jsonl``) other users
can write, private ledger or not, naming it with its owner and mode and the fix (its owner
moves it away and submits again: a ``chmod`` back leaves a descriptor another user opened
meanwhile writable). Until 2026-12-07 it passed such a file, whose every line the daemon
rejects, and with a private ledger called it only readable, advising ``chmod 600``. The rule
is the daemon's own (:func:`daemon.queue.file_verdict.writable_by_others`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.doctor.spool import spool_problems
from daemon.ledger import Ledger
from daemon.queue import SPOOL_DIR
from daemon.queue.files import append_line, attribution
from daemon.queue.ingest import Queue
from daemon.settings import load_settings
from tests.daemon.cli.private_config import write_config
from tests.daemon.doctor.doctor_setup import run_doctor

UID = os.getuid()
LINE = {"model": "llama-1b", "argv": ["/bin/true"]}


pytestmark = pytest.mark.usefixtures("usual_umask")


def _setup(tmp_path: Path, private: bool) -> tuple[Path, Path]:
    """``(config, queue.d)`` of a state dir its daemon set up."""
    state = tmp_path / "state"
    config = write_config(tmp_path, state, private)
    with Ledger.open(state / "ledger.db") as ledger:
        Queue.from_settings(load_settings(config), ledger).prepare()
    return config, state / SPOOL_DIR


def _spool_file(spool: Path, name: str, mode: int) -> Path:
    path = spool / name
    append_line(path, LINE, uid=UID, create_mode=0o600)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("private", [False, True])
def test_a_spool_file_others_can_write_fails_the_queue_line(tmp_path: Path, private: bool) -> None:
    config, spool = _setup(tmp_path, private)
    path = _spool_file(spool, f"{UID}.jsonl", 0o666)

    code, checks = run_doctor(config)

    assert code == 1
    queue = checks["queue"]
    assert queue.startswith("fail: "), queue
    assert f"1 spool file(s) writable by other users: {SPOOL_DIR}/{UID}.jsonl (owner uid {UID}" in (
        queue
    )
    assert "mode 0666)" in queue
    assert f"`mv {path} ~/old-spool.jsonl`" in queue and "submits again" in queue
    path.unlink()  # moved away: the next submit creates a new file
    _spool_file(spool, f"{UID}.jsonl", 0o600)
    assert run_doctor(config)[1]["queue"].startswith("pass: ")


def test_many_writable_spool_files_are_counted_past_the_first_three(tmp_path: Path) -> None:
    config, spool = _setup(tmp_path, private=False)
    names = sorted([f"{UID}.jsonl", *(f"{UID}.{n}.jsonl" for n in range(1, 5))])
    for name in names:
        _spool_file(spool, name, 0o664)

    queue = run_doctor(config)[1]["queue"]

    assert "5 spool file(s) writable by other users" in queue, queue
    assert all(f"{SPOOL_DIR}/{n} (owner" in queue for n in names[:3])
    assert f"{SPOOL_DIR}/{names[3]}" not in queue and " and 2 more;" in queue
    assert f"`find {spool} -type f -name '*.jsonl' -perm /022`" in queue


@pytest.mark.parametrize(
    "mode", [0o600, 0o644, 0o620, 0o602, 0o660, 0o646, 0o666, 0o4622], ids=lambda m: f"{m:04o}"
)
def test_doctor_names_exactly_the_files_whose_lines_the_daemon_rejects_as_writable(
    tmp_path: Path, mode: int
) -> None:
    spool = tmp_path / SPOOL_DIR
    spool.mkdir()
    path = _spool_file(spool, f"{UID}.jsonl", mode)
    rel = f"{SPOOL_DIR}/{path.name}"

    owner = attribution(rel, os.lstat(path))
    named = any("writable by other users" in p for p in spool_problems(spool, private=False))

    assert named == (isinstance(owner, str) and "writable by other users" in owner)


def test_a_writable_spool_file_is_not_also_called_readable_with_chmod_advice(
    tmp_path: Path,
) -> None:
    """With a private ledger a 0666 spool file was only "readable by other users", with a
    ``chmod 600`` that leaves a writer who opened it meanwhile able to write lines read as
    its owner's. It is named as writable, with the move; a readable one still gets the chmod."""
    config, spool = _setup(tmp_path, private=True)
    _spool_file(spool, f"{UID}.jsonl", 0o666)
    readable = _spool_file(spool, f"{UID}.1.jsonl", 0o644)

    queue = run_doctor(config)[1]["queue"]

    assert "1 spool file(s) writable by other users" in queue, queue
    assert "1 spool file(s) readable by other users" in queue, queue
    assert f"`chmod 600 {readable}` makes it private" in queue
    assert queue.count("chmod 600") == 1, queue


def test_the_find_that_makes_many_readable_files_private_leaves_writable_ones(
    tmp_path: Path,
) -> None:
    """Past three readable files the fix is a ``find ... -exec chmod 600``: it must not
    ``chmod`` back a writable one too, which is to be moved away instead."""
    config, spool = _setup(tmp_path, private=True)
    for n in range(1, 5):
        _spool_file(spool, f"{UID}.{n}.jsonl", 0o644)
    _spool_file(spool, f"{UID}.jsonl", 0o666)

    queue = run_doctor(config)[1]["queue"]

    assert "4 spool file(s) readable by other users" in queue, queue
    assert f"`find {spool} -type f -name '*.jsonl' -perm /044 ! -perm /022 -exec chmod 600" in (
        queue
    )


def test_a_spool_file_with_another_hard_link_fails_the_queue_line(tmp_path: Path) -> None:
    """The daemon rejects every line of a spool file with more than one hard link (its owner
    cannot vouch for them); until 2026-12-07 doctor's queue line passed such a file."""
    config, spool = _setup(tmp_path, private=False)
    path = _spool_file(spool, f"{UID}.jsonl", 0o644)
    os.link(path, tmp_path / "elsewhere.jsonl")

    code, checks = run_doctor(config)

    queue = checks["queue"]
    assert code == 1 and queue.startswith("fail: "), queue
    assert (
        f"1 spool file(s) with more than one hard link: {SPOOL_DIR}/{UID}.jsonl "
        f"(owner uid {UID}" in queue
    ), queue
    assert "2 links)" in queue, queue
    assert f"`mv {path} ~/old-spool.jsonl`" in queue and "submits again" in queue, queue
    (tmp_path / "elsewhere.jsonl").unlink()
    assert run_doctor(config)[1]["queue"].startswith("pass: ")


@pytest.mark.parametrize(("mode", "links"), [(0o644, 1), (0o644, 2), (0o600, 3), (0o666, 2)])
def test_doctor_names_exactly_the_files_whose_lines_the_daemon_rejects_as_linked(
    tmp_path: Path, mode: int, links: int
) -> None:
    spool = tmp_path / SPOOL_DIR
    spool.mkdir()
    path = _spool_file(spool, f"{UID}.jsonl", mode)
    for n in range(1, links):
        os.link(path, tmp_path / f"link{n}")

    owner = attribution(f"{SPOOL_DIR}/{path.name}", os.lstat(path))
    named = any("hard link" in p for p in spool_problems(spool, private=False))

    assert named == (isinstance(owner, str) and "hard links" in owner)
