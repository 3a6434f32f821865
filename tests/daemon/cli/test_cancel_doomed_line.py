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


def test_status_names_the_unread_line_the_daemon_will_reject_as_cancel_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the daemon down, ``carbond status bad`` of an id whose only line the daemon will
    reject said `unknown job 'bad'`, while ``cancel`` names that line and why. It now says
    the same as cancel (exit 2, as for an unknown id), also with no ledger yet and in
    ``--json``; the daemon then rejects that line for that reason."""
    queue, state = tmp_path / "queue.jsonl", ("--state-dir", str(tmp_path))
    append(queue, job_line(id="early", batch_size=0))
    code, out, err = run_cli(capsys, "status", "early", *state)  # no daemon has started yet
    assert (code, err) == (2, "")
    assert out.startswith(f"early: will never be queued: its line {queue}:1, not read yet, ")
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    service.tick(clock())
    service.close()  # the daemon is down from here on
    service.ledger.close()
    append(queue, job_line(id="bad", batch_size=0))
    capsys.readouterr()  # the daemon's log of line 1

    code, out, err = run_cli(capsys, "status", "bad", *state)
    _, cancel_err = run_cli(capsys, "cancel", "bad", *state)[1:]
    assert (code, err) == (2, "")
    why = cancel_err.removeprefix("carbond: error: job 'bad' will never be queued: ")
    assert out == "bad: will never be queued: " + why.replace("; nothing to cancel", "")
    assert out.startswith(f"bad: will never be queued: its line {queue}:2, not read yet, ")
    code, out, _ = run_cli(capsys, "status", "bad", *state, "--json")
    shown = json.loads(out)
    assert (code, shown["state"], shown["read"]) == (2, "rejected", False)
    code, _, err = run_cli(capsys, "status", "nosuch", *state)
    assert code == 2 and "unknown job 'nosuch'" in err  # no line at all: as before

    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    service.tick(clock())
    service.close()
    records = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert [(r["file"], r["line_no"]) for r in records] == [("queue.jsonl", 1), ("queue.jsonl", 2)]
    reason = records[1]["reason"].removeprefix("line 2: ")
    assert "field 'batch_size'" in reason
    assert shown["reason"].endswith(f"will be rejected by the daemon ({reason})")


def test_a_doomed_line_that_spells_its_id_with_an_escape_is_named_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The only line asking for id ``a`` writes it ``"\\u0061"`` (JSON the daemon reads as
    ``a``) and will be rejected: ``carbond status a`` and ``cancel a`` looked only at lines
    holding ``"a"`` as typed, so said `unknown job 'a'`. They now name that line and why, as
    for one that spells it plainly; the daemon then rejects it as job ``a``'s."""
    queue, state = tmp_path / "queue.jsonl", ("--state-dir", str(tmp_path))
    append(queue, job_line(id="ok"))
    append(queue, job_line(id="a", batch_size=0).replace('"id": "a"', '"id": "\\u0061"'))
    assert '"\\u0061"' in queue.read_text()
    before = queue.read_bytes()

    code, out, err = run_cli(capsys, "status", "a", *state)
    assert (code, err) == (2, "")
    assert out.startswith(f"a: will never be queued: its line {queue}:2, not read yet, ")
    code, out, refused = run_cli(capsys, "cancel", "a", *state)
    assert (code, out, queue.read_bytes()) == (2, "", before)
    assert refused.startswith(f"carbond: error: job 'a' will never be queued: its line {queue}:2")

    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    service.tick(clock())
    service.close()
    [record] = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert (record["file"], record["line_no"], record["job_id"]) == ("queue.jsonl", 2, "a")
    assert refused.endswith(f"({record['reason'].removeprefix('line 2: ')}); nothing to cancel\n")
