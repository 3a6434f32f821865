"""``carbond doctor``'s ``queue`` line on a main ``queue.jsonl`` other users can write: the
fix is to recreate it (the daemon stopped, its owner moves it away, ``carbond run`` creates a
new one), never a ``chmod``: a descriptor opened while it was writable stays writable, and the
lines written through it would be read as its owner's. Until 2026-12-07, with ``[ledger]
private = true``, the line named ``chmod 600 ... makes it private`` beside the writability
problem, and named no fix for the writability at all. The rule is the daemon's own
(:func:`daemon.queue.file_verdict.writable_by_others`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.queue import QUEUE_NAME
from daemon.queue.files import attribution
from tests.daemon.cli.private_config import write_config
from tests.daemon.doctor.doctor_setup import run_doctor, start_daemon

pytestmark = pytest.mark.usefixtures("usual_umask")


@pytest.mark.parametrize("private", [False, True])
def test_a_writable_main_queue_is_to_be_recreated_not_chmoded(
    tmp_path: Path, private: bool
) -> None:
    config = write_config(tmp_path, tmp_path / "state", private)
    start_daemon(config)
    queue = tmp_path / "state" / QUEUE_NAME
    queue.write_text('{"model": "llama-1b", "argv": ["/bin/true"]}\n')
    queue.chmod(0o666)

    code, checks = run_doctor(config)

    line = checks["queue"]
    assert code == 1 and line.startswith("fail: "), line
    assert f"{queue} is writable by other users (owner uid {os.getuid()}" in line, line
    assert "mode 0666)" in line
    assert "chmod 600" not in line and "makes it private" not in line, line
    assert f"`mv {queue} ~/old-queue.jsonl`" in line, line
    assert "the daemon stopped" in line and "`carbond run` creates a new one" in line, line
    assert "lines of it not yet read go with it" in line, line

    queue.rename(tmp_path / "old-queue.jsonl")  # the fix it names
    start_daemon(config)
    assert run_doctor(config)[1]["queue"].startswith("pass: ")


@pytest.mark.parametrize(
    "mode", [0o600, 0o644, 0o620, 0o602, 0o660, 0o646, 0o666, 0o4622], ids=lambda m: f"{m:04o}"
)
def test_doctor_calls_the_main_queue_writable_exactly_when_the_daemon_does(
    tmp_path: Path, mode: int
) -> None:
    config = write_config(tmp_path, tmp_path / "state", private=False)
    start_daemon(config)
    queue = tmp_path / "state" / QUEUE_NAME
    queue.chmod(mode)

    owner = attribution(QUEUE_NAME, os.lstat(queue))
    named = "writable by other users" in run_doctor(config)[1]["queue"]

    assert named == (isinstance(owner, str) and "writable by other users" in owner)
