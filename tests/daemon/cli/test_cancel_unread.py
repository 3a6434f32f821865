"""Root's ``carbond cancel`` of another user's job the daemon has not read yet: the cancel
line goes into that user's queue file, after the job's line, and the file stays theirs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import cancel_cmd, main
from daemon.cli.unread import UnreadLookup
from daemon.reports.lines import user_name
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import job_line, make_service, spool_file
from tests.daemon.users import user_with_uid

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="root cancels another user's job")

# uids without a daemon of their own: files owned by them (users made for them, with no
# other test's uid, which may expect no passwd entry: tests/daemon/users.py user_with_uid)
ALICE, BOB = 14242, 14343


@pytest.fixture(autouse=True)
def _owners_have_passwd_entries() -> None:
    """Real submitters have one; a file of an owner without one is not read (its group is
    unknown): tests/daemon/queue/test_owner_lookup.py."""
    for uid in (ALICE, BOB):
        user_with_uid(uid)


def test_root_cancels_another_users_unread_job_in_their_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``carbond cancel`` looked only in the caller's own queue file for a job the daemon had
    not read: root could not cancel another user's job while the daemon was down (`unknown
    job`). Root's cancel now follows the job's line in the file that holds it."""
    path = spool_file(tmp_path, ALICE, job_line(id="theirs"))
    assert main(["cancel", "theirs", "--state-dir", str(tmp_path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["queue_file"], shown["state"]) == (str(path), None)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line.get("id") or line.get("cancel") for line in lines] == ["theirs", "theirs"]
    st = path.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (ALICE, 0o644)  # still hers, as private
    assert not (tmp_path / "queue.jsonl").exists()  # nothing of root's anywhere else

    clock, executor = FakeClock(), RecordingExecutor()
    service = make_service(tmp_path, executor)
    service.start(clock())
    service.tick(clock())
    assert service.ledger.job("theirs").state == "cancelled"
    assert executor.launches == []
    assert service.ledger.transitions("theirs")[-1].reason == "cancelled by its owner before start"


def test_roots_status_finds_another_users_unread_job_as_its_cancel_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the daemon down, root's ``carbond status ID`` of a user's job said `unknown job`
    (exit 2), while root's ``carbond cancel ID`` found and cancelled it: status looked in
    root's own queue file only. It shows the job as submitted, in whose file, and the
    pending cancel, as for the user."""
    path = spool_file(tmp_path, ALICE, job_line(id="theirs"))
    whose = f"{path} ({user_name(ALICE)}'s)"
    assert main(["status", "theirs", "--state-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"theirs: submitted to {whose}, not read by the daemon yet\n"
    assert main(["cancel", "theirs", "--state-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["status", "theirs", "--state-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "job_id": "theirs", "state": "submitted", "queue_file": str(path),
        "cancel_requested": True, "newline_pending": False, "held": None,
    }  # fmt: skip
    spool_file(tmp_path, BOB, job_line(id="theirs"))  # read after Alice's: rejected
    assert main(["status", "theirs", "--state-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"theirs: submitted to {whose}, ")


def test_roots_status_cancel_and_jobs_take_the_line_of_an_id_the_daemon_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An id unread in Alice's and Bob's queue files: root's ``status`` and ``cancel``
    refused it (`unread in several users' queue files`, exit 2) while ``jobs`` listed Alice's
    line, which the daemon takes (it reads ``queue.d`` by name, and rejects Bob's as another
    user's id). All three now take Alice's: ``status`` shows her file, ``cancel`` follows her
    line, and the daemon then cancels her job and rejects Bob's line."""
    alice = spool_file(tmp_path, ALICE, job_line(id="same"))
    bob = spool_file(tmp_path, BOB, job_line(id="same"))
    state = ["--state-dir", str(tmp_path)]
    assert main(["jobs", *state, "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["queue_file"], listed["cancel_requested"]) == (str(alice), False)
    assert main(["status", "same", *state, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["queue_file"] == str(alice)
    assert main(["cancel", "same", *state, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["queue_file"] == str(alice)
    assert bob.read_text() == job_line(id="same")
    assert main(["status", "same", *state, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["queue_file"], shown["cancel_requested"]) == (str(alice), True)
    assert main(["jobs", *state, "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["queue_file"], listed["cancel_requested"]) == (str(alice), True)

    clock, executor = FakeClock(), RecordingExecutor()
    service = make_service(tmp_path, executor)
    service.start(clock())
    service.tick(clock())
    service.close()
    job = service.ledger.job("same")
    assert (job.uid, job.state, executor.launches) == (ALICE, "cancelled", [])
    [rejected] = [json.loads(r) for r in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert rejected["file"] == f"queue.d/{BOB}.jsonl"


def test_roots_status_counts_a_cancel_in_a_later_file_of_the_owner_as_jobs_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alice's job in her ``queue.d/<uid>.1.jsonl``, her cancel of it in her
    ``queue.d/<uid>.jsonl``, which the daemon reads after it (by name): it cancels the job,
    and ``jobs`` said so, but root's ``status`` looked for a cancel in the job's own file
    only and showed none. It now counts it as ``jobs`` does."""
    spool_file(tmp_path, ALICE, json.dumps({"cancel": "hers"}) + "\n")
    first = tmp_path / "queue.d" / f"{ALICE}.1.jsonl"
    first.write_text(job_line(id="hers"))
    os.chown(first, ALICE, ALICE)
    state = ["--state-dir", str(tmp_path)]
    assert main(["jobs", *state, "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["cancel_requested"] is True
    assert main(["status", "hers", *state, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cancel_requested"] is True

    clock, executor = FakeClock(), RecordingExecutor()
    service = make_service(tmp_path, executor)
    service.start(clock())
    service.tick(clock())
    service.close()
    assert service.ledger.job("hers").state == "cancelled"


def test_root_does_not_cancel_a_line_the_daemon_never_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A spool file named for another uid than its owner is never read: its line is no job."""
    path = spool_file(tmp_path, ALICE, job_line(id="planted"))
    os.chown(path, BOB, BOB)
    assert main(["cancel", "planted", "--state-dir", str(tmp_path)]) == 2
    assert "neither the ledger nor any queue file has it" in capsys.readouterr().err
    assert path.read_text() == job_line(id="planted")


def test_roots_cancel_never_creates_the_file_of_a_user_whose_file_went_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the owner's queue file disappeared between root's lookup and the append (the
    owner removed it), ``append_line`` created it, root-owned, before its check that it was
    the owner's: the cancel failed, and left an empty root-owned ``queue.d/<uid>.jsonl`` in
    the user's name. The file of another user is now never created: the cancel fails saying
    the file is gone, and leaves nothing."""
    path = spool_file(tmp_path, ALICE, job_line(id="theirs"))
    found = cancel_cmd.unread_lookup

    def then_removed(state_dir: Path, job_id: str, uid: int, **when: Any) -> UnreadLookup:
        job = found(state_dir, job_id, uid, **when)  # the real lookup, then the owner removes it
        path.unlink()
        return job

    monkeypatch.setattr(cancel_cmd, "unread_lookup", then_removed)
    assert main(["cancel", "theirs", "--state-dir", str(tmp_path)]) == 1
    assert "no longer exists" in capsys.readouterr().err
    assert not path.exists()
    assert list((tmp_path / "queue.d").iterdir()) == []
