"""Root's ``carbond jobs`` of the lines the daemon has not read yet, across users' queue files:
it lists them as the daemon will take them, in the order it reads the files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.cli.cli_run import run_cli
from tests.daemon.helpers import job_line, make_service, spool_file
from tests.daemon.users import user_with_uid

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="root lists every user's files")

ALICE, BOB = 14242, 14343  # as tests/daemon/cli/test_cancel_unread.py's: no daemon of theirs


@pytest.fixture(autouse=True)
def _owners_have_passwd_entries() -> None:
    for uid in (ALICE, BOB):
        user_with_uid(uid)


def test_roots_jobs_lists_an_id_unread_in_two_users_files_once_as_the_daemon_takes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same id unread in Alice's and Bob's queue files was listed twice (once per file)
    though the daemon takes the first line it reads with it, Alice's (``queue.d`` files by
    name), and rejects Bob's (the id is another user's then), with Bob's cancel of it. It is
    listed once now, Alice's, without that cancel; the daemon's ledger then agrees."""
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    service.close()  # the daemon is down from here on
    service.ledger.close()
    alice = spool_file(tmp_path, ALICE, job_line(id="same", name="hers"))
    spool_file(tmp_path, BOB, job_line(id="same", name="his") + json.dumps({"cancel": "same"})
                + "\n" + job_line(id="bobs", name="bobs"))  # fmt: skip

    code, out, err = run_cli(capsys, "jobs", "--state-dir", str(tmp_path), "--json")
    assert code == 0, err
    listed = [(r["job_id"], r["name"], r["uid"], r["cancel_requested"]) for r in json.loads(out)]
    assert listed == [("same", "hers", ALICE, False), ("bobs", "bobs", BOB, False)]
    assert json.loads(out)[0]["queue_file"] == str(alice)

    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    service.tick(clock())
    taken = [(job.job_id, job.name, job.uid, job.state) for job in service.ledger.iter_jobs([])]
    service.close()
    assert sorted((job_id, name, uid) for job_id, name, uid, _ in taken) == sorted(
        (job_id, name, uid) for job_id, name, uid, _ in listed)  # fmt: skip
    assert all(state != "cancelled" for *_, state in taken)


def test_roots_jobs_shows_a_cancel_in_a_later_file_of_the_jobs_owner(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alice's job in one spool file of hers and her cancel of it in another, read after it
    (``queue.d/14242.1.jsonl`` sorts before ``14242.jsonl``): the daemon cancels the job, but
    ``jobs`` looked for a cancel in the job's own file only and listed no cancel."""
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    service.close()
    service.ledger.close()
    first = tmp_path / "queue.d" / f"{ALICE}.1.jsonl"
    spool_file(tmp_path, ALICE, job_line(id="hers")).rename(first)
    spool_file(tmp_path, ALICE, json.dumps({"cancel": "hers"}) + "\n")

    code, out, err = run_cli(capsys, "jobs", "--state-dir", str(tmp_path), "--json")
    assert code == 0, err
    [row] = json.loads(out)
    assert (row["job_id"], row["queue_file"], row["cancel_requested"]) == ("hers", str(first), True)

    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    service.tick(clock())
    assert service.ledger.job_state("hers") == "cancelled"
    service.close()


def test_an_unfinished_line_does_not_hold_its_id_against_a_later_files_whole_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alice's line with id ``same`` has no newline yet: the daemon leaves it unread and takes
    Bob's whole line with that id, read after hers. ``jobs`` lists Bob's as the job, not
    Alice's unfinished one (which the daemon rejects once it ends: the id is Bob's then)."""
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    service.close()
    service.ledger.close()
    spool_file(tmp_path, ALICE, job_line(id="same", name="hers").rstrip("\n"))
    spool_file(tmp_path, BOB, job_line(id="same", name="his"))

    code, out, err = run_cli(capsys, "jobs", "--state-dir", str(tmp_path), "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["job_id"], r["name"], r["newline_pending"]) for r in rows] == [
        ("same", "his", False)]  # fmt: skip

    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    service.tick(clock())
    assert (service.ledger.job("same").name, service.ledger.job("same").uid) == ("his", BOB)
    service.close()
