"""Root's ``carbond jobs`` and ``status`` of the unread lines of a queue file whose owner has no
passwd entry now (an LDAP or sssd outage, a deleted user): the daemon holds that file unread
until the lookup succeeds, so its lines take their ids after every other file's, and are
shown as held."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.cli.cli_run import run_cli
from tests.daemon.helpers import job_line, make_service, spool_file
from tests.daemon.users import cli_as, open_dir, stand_in, uid_without_user, user_with_uid

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="root lists every user's files")

ALICE = 14242  # as tests/daemon/cli/test_jobs_unread_users.py's
HELD = "held: owner unknown"


def test_roots_view_holds_an_owner_unknown_files_lines_after_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A spool file whose owner has no passwd entry, named before Alice's (``queue.d`` is read
    by name), holds ``same`` and ``only``; Alice's holds ``same`` too. Root's ``jobs`` listed
    the held file's lines in their usual place, so its ``same`` took the id and Alice's was
    left out, though the daemon reads nothing of that file while the lookup fails: it takes
    Alice's ``same`` and holds ``only``. Now ``jobs`` lists Alice's ``same``, then ``only``
    marked held (``--json``: ``held``, its reason), ``status`` says why it waits, and the
    daemon's ledger agrees."""
    user_with_uid(ALICE)
    nobody = uid_without_user(1_000_000)  # "1000000.jsonl" sorts before "14242.jsonl"
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    service.close()  # the daemon is down from here on
    service.ledger.close()
    held = spool_file(tmp_path, nobody, job_line(id="same", name="held one")
                       + job_line(id="only", name="held only"))  # fmt: skip
    alice = spool_file(tmp_path, ALICE, job_line(id="same", name="alices"))

    code, out, err = run_cli(capsys, "jobs", "--state-dir", str(tmp_path), "--json")
    assert code == 0, err
    rows = json.loads(out)
    listed = [(r["job_id"], r["name"], r["uid"], r["queue_file"]) for r in rows]
    assert listed == [("same", "alices", ALICE, str(alice)), ("only", "held only", nobody,
                                                               str(held))]  # fmt: skip
    assert rows[0]["held"] is None
    assert rows[1]["held"].startswith(HELD) and f"uid {nobody}" in rows[1]["held"]
    code, out, err = run_cli(capsys, "jobs", "--state-dir", str(tmp_path))
    assert code == 0, err
    [only] = [line for line in out.splitlines() if line.startswith("| only ")]
    assert f"| submitted ({HELD}) |" in only

    code, out, err = run_cli(capsys, "status", "only", "--state-dir", str(tmp_path))
    assert code == 0, err
    assert out.startswith(f"only: submitted to {held} ({nobody}'s), not read by the daemon yet: "
                          f"{HELD}")  # fmt: skip
    code, out, err = run_cli(capsys, "status", "only", "--state-dir", str(tmp_path), "--json")
    assert json.loads(out)["held"].startswith(HELD)
    code, out, err = run_cli(capsys, "status", "same", "--state-dir", str(tmp_path), "--json")
    assert (json.loads(out)["queue_file"], json.loads(out)["held"]) == (str(alice), None)

    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    service.tick(clock())
    taken = [(job.job_id, job.name, job.uid) for job in service.ledger.iter_jobs([])]
    service.close()
    assert taken == [("same", "alices", ALICE)]  # "only" waits, unread, as listed


def test_roots_cancel_of_a_held_job_says_it_is_held_and_when_it_takes_effect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Root's ``cancel`` of a job in a file held for its owner's passwd lookup appends the
    cancel after the job's line there, as for any unread job, but said only that it would be
    cancelled before it starts, as if the daemon read it at its next pass: now it says the
    job is held, why, and that the cancel takes effect once the daemon reads that file."""
    nobody = uid_without_user(1_000_000)
    (tmp_path / "queue.d").mkdir(mode=0o1733)
    held = spool_file(tmp_path, nobody, job_line(id="only"))

    code, out, err = run_cli(capsys, "cancel", "only", "--state-dir", str(tmp_path))
    assert code == 0, err
    assert out.startswith(f"cancel requested for only (not read by the daemon yet: {HELD} ")
    assert "it takes effect when the daemon reads that file" in out
    assert f"uid {nobody} has no passwd entry now" in out and str(held) in out
    lines = [json.loads(line) for line in held.read_text().splitlines()]
    assert lines[1:] == [{"cancel": "only"}]  # after its line, in its file
    code, out, err = run_cli(capsys, "cancel", "only", "--state-dir", str(tmp_path), "--json")
    assert code == 0, err
    assert json.loads(out)["held"].startswith(HELD)


def test_a_users_view_of_their_own_file_is_held_when_the_daemon_holds_it() -> None:
    """A user whose passwd entry is missing (a real uid, run as it) has job ``mine`` in their
    spool file. The daemon runs as root (the state dir's owner) and holds the file unread
    until the lookup succeeds, but their ``jobs`` and ``status`` judged it under their own uid,
    as if the daemon were theirs (a daemon reads its own uid's file in its own group), and
    showed ``mine`` as read at the next pass. Now they show it held, as root's view does, and
    the daemon's ledger agrees."""
    nobody = uid_without_user(1_000_000)
    top = open_dir()
    try:
        state = top / "state"
        state.mkdir(mode=0o755)
        clock = FakeClock()
        service = make_service(state, RecordingExecutor(auto_finish=False))
        service.start(clock())
        service.close()
        service.ledger.close()
        mine = spool_file(state, nobody, job_line(id="mine"))
        user = stand_in(nobody)
        cli = cli_as(user, top)

        result = cli.run(user, "jobs", "--state-dir", str(state), "--json")
        assert result.returncode == 0, result.stderr
        [row] = json.loads(result.stdout)
        assert (row["job_id"], row["queue_file"]) == ("mine", str(mine))
        assert row["held"] is not None and row["held"].startswith(HELD), row["held"]
        result = cli.run(user, "status", "mine", "--state-dir", str(state))
        assert result.returncode == 0, result.stderr
        assert f"not read by the daemon yet: {HELD}" in result.stdout

        service = make_service(state, RecordingExecutor(auto_finish=False))
        service.start(clock())
        service.tick(clock())
        taken = list(service.ledger.iter_jobs([]))
        service.close()
        assert taken == []  # "mine" waits, unread, as their view says
    finally:
        shutil.rmtree(top)
