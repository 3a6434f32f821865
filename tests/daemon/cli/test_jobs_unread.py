"""``carbond jobs`` lists the jobs submitted while the daemon is down (their lines not read
yet), as ``carbond status ID`` finds each of them: it listed the ledger's alone, so a job just
submitted was in ``status`` but missing from ``jobs``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.statedir import LEDGER_NAME
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.cli.cli_run import run_cli
from tests.daemon.helpers import append, job_line, make_service


def _jobs(capsys: pytest.CaptureFixture[str], state: Path, *extra: str) -> tuple[int, str]:
    code, out, err = run_cli(capsys, "jobs", "--state-dir", str(state), *extra)
    assert code == 0, err
    return code, out


def _status(capsys: pytest.CaptureFixture[str], state: Path, job_id: str) -> tuple[int, str]:
    code, out, err = run_cli(capsys, "status", job_id, "--state-dir", str(state), "--json")
    assert code == 0, err
    return code, out


def test_jobs_lists_the_jobs_the_daemon_has_not_read_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    append(service.queue.path, job_line(id="old"))
    service.tick(clock.advance(60))
    service.close()  # the daemon is down from here on
    service.ledger.close()
    queue = tmp_path / "queue.jsonl"
    for job_id, extra in (("new1", ["--deadline", "+8h"]), ("new2", [])):
        assert run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--id", job_id,
                       "--model", "llama-1b", *extra, "--", "true")[0] == 0  # fmt: skip
    assert run_cli(capsys, "cancel", "new2", "--state-dir", str(tmp_path))[0] == 0
    append(queue, job_line(id="old"))  # a duplicate of a ledger job's id: dropped, not a job
    append(queue, "not json")  # rejected once read: not a job either

    _, out = _jobs(capsys, tmp_path, "--json")
    rows = {row["job_id"]: row for row in json.loads(out)}
    assert list(rows) == ["old", "new1", "new2"]  # the ledger's, then the unread in file order
    assert rows["old"]["state"] != "submitted"
    for job_id, cancel in (("new1", False), ("new2", True)):
        row = rows[job_id]
        assert (row["state"], row["queue_file"], row["cancel_requested"]) == (
            "submitted", str(queue), cancel)  # fmt: skip
        _, out = _status(capsys, tmp_path, job_id)
        assert json.loads(out)["state"] == row["state"]  # the same word as status
    assert rows["new1"]["deadline"] is not None and rows["new2"]["deadline"] is None

    _, out = _jobs(capsys, tmp_path)
    table = [line for line in out.splitlines() if line.startswith("| new")]
    assert len(table) == 2 and all("| submitted " in line for line in table), out
    assert "jobs 1-3 of 3 (" in out and "submitted 2" in out, out

    _, out = _jobs(capsys, tmp_path, "--state", "submitted", "--json")
    assert [row["job_id"] for row in json.loads(out)] == ["new1", "new2"]
    _, out = _jobs(capsys, tmp_path, "--state", "submitted")
    assert "jobs 1-2 of 2 (submitted 2)" in out and "| old " not in out, out
    _, out = _jobs(capsys, tmp_path, "--state", rows["old"]["state"], "--json")
    assert [row["job_id"] for row in json.loads(out)] == ["old"]
    # paged as one list: the ledger's jobs first
    _, out = _jobs(capsys, tmp_path, "--offset", "1", "--limit", "1", "--json")
    assert [row["job_id"] for row in json.loads(out)] == ["new1"]
    _, out = _jobs(capsys, tmp_path, "--offset", "2", "--limit", "5")
    assert [line.split("|")[1].strip() for line in out.splitlines()
            if line.startswith("| new")] == ["new2"]  # fmt: skip
    assert "jobs 3-3 of 3" in out, out


def test_jobs_lists_the_unread_jobs_before_any_daemon_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No ledger at all (no daemon has started with this state dir): ``jobs`` exited 2 'no
    ledger' though ``status ID`` found each job submitted; it lists them now, saying why on
    stderr, and keeps the error where there is nothing unread to list."""
    state = str(tmp_path)
    code, _, err = run_cli(capsys, "jobs", "--state-dir", state)
    assert code == 2 and "no ledger" in err, err  # nothing submitted: as before
    for job_id in ("a1", "a2"):
        assert run_cli(capsys, "submit", "--state-dir", state, "--id", job_id,
                       "--model", "llama-1b", "--", "true")[0] == 0  # fmt: skip
    assert not (tmp_path / LEDGER_NAME).exists()

    code, out, err = run_cli(capsys, "jobs", "--state-dir", state, "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["job_id"], r["state"]) for r in rows] == [("a1", "submitted"), ("a2", "submitted")]
    assert "no daemon has read the queue" in err, err
    code, out, err = run_cli(capsys, "jobs", "--state-dir", state)
    assert code == 0, err
    assert "jobs 1-2 of 2 (submitted 2)" in out and "total over" not in out, out
    code, out, _ = run_cli(capsys, "jobs", "--state-dir", state, "--offset", "1", "--json")
    assert code == 0 and [r["job_id"] for r in json.loads(out)] == ["a2"]

    code, _, err = run_cli(capsys, "jobs", "--state-dir", state, "--state", "running")
    assert code == 2 and "no ledger" in err, err  # none of the states asked for is unread


def test_jobs_lists_an_unread_line_without_an_id_as_the_daemon_will_take_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A raw line without an ``id`` is a job to the daemon (it gives it a new id when it
    reads it), but ``jobs`` listed only unread lines with an id: a job written by hand while
    the daemon was down was missing until it was read. It is listed now as ``submitted``,
    without an id yet (``--json``: null), by where it is (file and line as the daemon counts
    them), and read by the daemon it is the one new job; a line it will reject is not."""
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    queue = service.queue.path
    append(queue, job_line(id="read"))
    service.tick(clock.advance(60))
    service.close()  # the daemon is down from here on
    service.ledger.close()
    append(queue, "\n")  # a blank line: counted, as the daemon counts lines
    append(queue, job_line(name="by-hand"))
    append(queue, job_line(name="broken", command="true"))  # rejected once read: no job

    _, out = _jobs(capsys, tmp_path, "--json")
    rows = json.loads(out)
    assert [(r["job_id"], r["state"]) for r in rows][1:] == [(None, "submitted")]
    assert (rows[1]["name"], rows[1]["queue_file"], rows[1]["line_no"]) == (
        "by-hand", str(queue), 3)  # fmt: skip
    _, out = _jobs(capsys, tmp_path)
    [line] = [line for line in out.splitlines() if "by-hand" in line]
    assert "(new id) queue.jsonl:3" in line and "| submitted " in line, out
    assert "jobs 1-2 of 2 (" in out, out

    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    service.tick(clock.advance(60))
    [new] = [j for j in service.ledger.jobs() if j.name == "by-hand"]
    assert new.source == "queue.jsonl:3"  # the line `jobs` named
    service.close()
    service.ledger.close()
    _, out = _jobs(capsys, tmp_path, "--json")
    assert [r["job_id"] for r in json.loads(out)] == ["read", new.job_id]  # listed once


def test_an_unfinished_last_line_is_listed_as_pending_its_newline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job line without its newline (a writer that has not finished it) was listed by
    ``jobs`` and ``status`` as any job submitted, though the daemon waits for the line's end
    and leaves it unread meanwhile. Both say now that it waits for its newline (``--json``:
    ``newline_pending``); ``submit``'s duplicate warning says its line ends that one, which
    the daemon then reads as the job."""
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    queue = service.queue.path
    append(queue, job_line(id="whole", name="whole"))
    append(queue, job_line(id="half", name="first").rstrip("\n"))

    _, out = _jobs(capsys, tmp_path, "--state", "submitted", "--json")
    assert [(r["job_id"], r["newline_pending"]) for r in json.loads(out)] == [
        ("whole", False), ("half", True)]  # fmt: skip
    _, out = _jobs(capsys, tmp_path, "--state", "submitted")
    [row] = [line for line in out.splitlines() if line.startswith("| half ")]
    assert "| submitted (no newline yet) " in row, out
    _, out = _status(capsys, tmp_path, "half")
    assert json.loads(out)["newline_pending"] is True
    code, out, _ = run_cli(capsys, "status", "half", "--state-dir", str(tmp_path))
    assert code == 0 and "its line has no newline yet" in out, out
    service.tick(clock.advance(60))  # the daemon reads the whole line, and waits for the other
    assert service.ledger.job_owner("whole") is not None
    assert service.ledger.job_owner("half") is None

    code, _, err = run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--id", "half",
                           "--name", "second", "--model", "llama-1b", "--", "true")  # fmt: skip
    assert code == 0 and "(its line had no newline: this submit ends it)" in err, err
    service.tick(clock.advance(60))
    assert service.ledger.job("half").name == "first"  # the line it ended is the job
    service.close()
