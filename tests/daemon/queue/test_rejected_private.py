"""``rejected.jsonl`` is readable by every user: it never copies the text of a line from a queue
file others cannot read."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import job_line, make_service

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="spool files owned by other uids")

ALICE, BOB = 4242, 4343  # uids without a daemon of their own: files owned by them
SECRET = "hf_SECRET-token-in-the-env"


def _spool_file(state: Path, uid: int, text: str, mode: int) -> Path:
    spool = state / "queue.d"
    spool.mkdir(mode=0o1733, exist_ok=True)
    path = spool / f"{uid}.jsonl"
    path.write_text(text)
    os.chown(path, uid, uid)
    path.chmod(mode)
    return path


def test_a_private_files_rejected_line_is_not_copied_for_everyone_to_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused line's first 4 KiB went to ``rejected.jsonl`` (0644) whatever file it came
    from, so a line of a user's private 0600 spool file (an ``env`` with a token, say) was
    readable by every user there. Its text is now left out (``"line": null``); the file, line
    number, reason and the id it named stay, for ``carbond jobs --state rejected`` and
    ``carbond status``. A line from a file anyone can read keeps its text."""
    bad = job_line(id="hers", env={"HF_TOKEN": SECRET}, requests=0)
    _spool_file(tmp_path, ALICE, bad, 0o600)
    _spool_file(tmp_path, BOB, job_line(id="his", requests=0), 0o644)
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor())
    service.start(clock())
    service.tick(clock())

    rejected = tmp_path / "rejected.jsonl"
    assert stat.S_IMODE(rejected.stat().st_mode) & 0o004  # every user reads their own lines
    assert SECRET not in rejected.read_text()
    assert main(["jobs", "--state", "rejected", "--state-dir", str(tmp_path), "--json"]) == 0
    rows = {r["uid"]: r for r in json.loads(capsys.readouterr().out)}
    hers, his = rows[ALICE], rows[BOB]
    assert (hers["file"], hers["line_no"], hers["job_id"]) == ("queue.d/4242.jsonl", 1, "hers")
    assert "requests" in hers["reason"]
    assert hers["line"] is None
    assert his["line"] == job_line(id="his", requests=0).strip()
