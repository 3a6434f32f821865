"""One rule for "other users can read this queue file" (:func:`daemon.queue.files.
readable_by_others`: group or others may read it), which ``carbond submit``'s note and
``carbond doctor``'s ``queue`` line (main queue and spool files) all ask with a private ledger;
until 2026-12-07 each kept its own copy of the mask. The rejected-lines record asks another
question (may *every* user read the file: ``S_IROTH`` only), pinned here too."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from daemon.cli.own_queue import append_own_line
from daemon.doctor.spool import spool_problems
from daemon.queue import QUEUE_NAME, SPOOL_DIR
from daemon.queue.files import readable_by_others
from daemon.queue.rejected import write_rejections
from daemon.settings import load_settings
from tests.daemon.cli.private_config import write_config
from tests.daemon.doctor.doctor_setup import run_doctor, start_daemon

MODES = [0o600, 0o400, 0o640, 0o604, 0o644, 0o440, 0o2640, 0o700]


pytestmark = pytest.mark.usefixtures("usual_umask")


@pytest.mark.parametrize("mode", MODES, ids=lambda m: f"{m:04o}")
def test_the_rule_is_group_or_others_read(mode: int) -> None:
    assert readable_by_others(mode) == bool(mode & 0o044)
    assert readable_by_others(stat.S_IFREG | mode) == bool(mode & 0o044)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: f"{m:04o}")
def test_submit_and_doctor_call_a_file_readable_exactly_by_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    config = write_config(tmp_path, tmp_path / "state", private=True)
    start_daemon(config)
    queue = tmp_path / "state" / QUEUE_NAME
    queue.chmod(mode | 0o200)  # the owner's, so their submit appends to it
    expected = readable_by_others(mode)

    append_own_line(load_settings(config), {"cancel": "j000000000000"})
    noted = "is readable by other users" in capsys.readouterr().err
    named_main = "is readable by other users" in run_doctor(config)[1]["queue"]
    spool = tmp_path / "state" / SPOOL_DIR
    (spool / f"{os.getuid()}.jsonl").touch()
    (spool / f"{os.getuid()}.jsonl").chmod(mode)
    named_spool = any("readable by other users" in p for p in spool_problems(spool, private=True))

    assert (noted, named_main, named_spool) == (expected, expected, expected)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: f"{m:04o}")
def test_a_rejected_line_is_copied_only_from_a_file_every_user_may_read(
    tmp_path: Path, mode: int
) -> None:
    """Not the same question: a group-readable file's line stays out of ``rejected.jsonl``,
    which every user may read."""
    source = tmp_path / "src.jsonl"
    source.touch()
    source.chmod(mode)
    write_rejections(tmp_path, [{"line": "secret argv"}], os.stat(source))

    copied = "secret argv" in (tmp_path / "rejected.jsonl").read_text()

    assert copied == bool(mode & stat.S_IROTH)
