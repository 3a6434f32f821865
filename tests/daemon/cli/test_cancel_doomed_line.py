"""``carbond cancel ID`` of a job whose only line the daemon has not read yet, and will reject:
it says which line that is and why the daemon will reject it, as the daemon then does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.cli.cli_run import run_cli
from tests.daemon.helpers import append, job_line, make_service


def test_cancel_names_the_unread_line_the_daemon_will_reject_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon is down and the only line with id ``bad`` is one it will reject
    (``batch_size`` 0): ``carbond cancel bad`` said `unknown job 'bad': neither the ledger nor
    any queue file has it`, though the line is right there. It now names that line, FILE:LINE,
    and the daemon's own reason (exit 2, nothing appended); the daemon then rejects that line
    for that reason."""
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    service.close()  # the daemon is down from here on
    service.ledger.close()
    queue = tmp_path / "queue.jsonl"
    append(queue, job_line(id="ok"))
    append(queue, job_line(id="bad", batch_size=0))
    before = queue.read_bytes()

    code, out, refused = run_cli(capsys, "cancel", "bad", "--state-dir", str(tmp_path))
    assert (code, out, queue.read_bytes()) == (2, "", before)
    assert refused.startswith(
        f"carbond: error: job 'bad' will never be queued: its line {queue}:2, "
    )
    code, _, err = run_cli(capsys, "cancel", "nosuch", "--state-dir", str(tmp_path))
    assert code == 2 and "unknown job 'nosuch'" in err  # no line at all: as before

    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    service.tick(clock())
    service.close()
    [record] = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert (record["file"], record["line_no"]) == ("queue.jsonl", 2)
    reason = record["reason"].removeprefix("line 2: ")
    assert "field 'batch_size'" in reason
    assert refused.endswith(f"will be rejected by the daemon ({reason}); nothing to cancel\n")
