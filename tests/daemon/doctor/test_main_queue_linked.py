"""``carbond doctor``'s ``queue`` line on a main ``queue.jsonl`` with more than one hard link.
The daemon rejects every line it reads from such a file (``queue_line_rejected``, "its owner
cannot vouch for its lines": the other name, in a directory doctor cannot see, may be anyone's
way in to it), as it does a spool file's; until 2026-12-07 doctor named the hard-linked spool
files but passed a hard-linked main queue. The fix is the writable main queue's: recreate it.
The rule is the daemon's own (:func:`daemon.queue.file_verdict.hard_linked`)."""

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
def test_a_hard_linked_main_queue_fails_the_queue_line_with_the_recreate_fix(
    tmp_path: Path, private: bool
) -> None:
    config = write_config(tmp_path, tmp_path / "state", private)
    start_daemon(config)
    queue = tmp_path / "state" / QUEUE_NAME
    elsewhere = tmp_path / "elsewhere.jsonl"
    os.link(queue, elsewhere)

    code, checks = run_doctor(config)

    line = checks["queue"]
    assert code == 1 and line.startswith("fail: "), line
    mode = "0600" if private else "0644"
    assert f"{queue} has 2 hard links (owner uid {os.getuid()}" in line, line
    assert f", mode {mode}): the daemon rejects every line it reads from it" in line, line
    assert f"`mv {queue} ~/old-queue.jsonl`" in line, line
    assert "the daemon stopped" in line and "`carbond run` creates a new one" in line, line
    assert f"(mode {mode})" in line and "lines of it not yet read go with it" in line, line

    queue.rename(tmp_path / "old-queue.jsonl")  # the fix it names
    start_daemon(config)
    assert run_doctor(config)[1]["queue"].startswith("pass: ")


def test_the_other_name_gone_the_main_queue_passes(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "state", private=False)
    start_daemon(config)
    queue = tmp_path / "state" / QUEUE_NAME
    os.link(queue, tmp_path / "elsewhere.jsonl")
    assert run_doctor(config)[1]["queue"].startswith("fail: ")

    (tmp_path / "elsewhere.jsonl").unlink()

    assert run_doctor(config)[1]["queue"].startswith("pass: ")


@pytest.mark.parametrize(
    ("mode", "links"),
    [(0o644, 1), (0o644, 2), (0o600, 3), (0o666, 2), (0o666, 1)],
    ids=lambda v: f"{v:04o}" if v > 8 else f"{v}link",
)
def test_doctor_calls_the_main_queue_linked_exactly_when_the_daemon_does(
    tmp_path: Path, mode: int, links: int
) -> None:
    """The daemon's order too: a file both writable and linked is named as writable."""
    config = write_config(tmp_path, tmp_path / "state", private=False)
    start_daemon(config)
    queue = tmp_path / "state" / QUEUE_NAME
    queue.chmod(mode)
    for n in range(1, links):
        os.link(queue, tmp_path / f"link{n}")

    owner = attribution(QUEUE_NAME, os.lstat(queue))
    named = "hard links" in run_doctor(config)[1]["queue"]

    assert named == (isinstance(owner, str) and "hard links" in owner)
