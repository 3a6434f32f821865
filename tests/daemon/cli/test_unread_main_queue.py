"""Another user's ``carbond jobs``, ``status``, ``cancel`` and ``submit`` of lines the daemon
has not read yet judge them with the main ``queue.jsonl`` where they may read it: the daemon
reads it first, so a line there takes an id before theirs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from daemon.queue import QUEUE_NAME
from daemon.reports.lines import user_name
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.cli.cli_run import run_cli
from tests.daemon.helpers import job_line, make_service
from tests.daemon.users import uid_without_user, user_with_uid

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="files owned by another user")

ALICE = 14242  # as tests/daemon/cli/test_cancel_unread.py's: no daemon of hers


@pytest.fixture(autouse=True)
def _owner_has_a_passwd_entry() -> None:
    user_with_uid(ALICE)


def _main_and_alices(state_dir: Path, hers_text: str) -> tuple[Path, Path]:
    """Root's world-readable ``queue.jsonl`` holding job ``same``, and Alice's ``queue.d``
    file holding ``hers_text``: their paths."""
    queue = state_dir / "queue.jsonl"
    queue.write_text(job_line(id="same"))
    queue.chmod(0o644)
    spool = state_dir / "queue.d"
    spool.mkdir(mode=0o1733)
    spool.chmod(0o1733)
    hers = spool / f"{ALICE}.jsonl"
    hers.write_text(hers_text)
    os.chown(hers, ALICE, ALICE)
    return queue, hers


def test_a_users_unread_line_whose_id_the_main_queue_takes_first_is_no_job_of_theirs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root's unread ``queue.jsonl`` (world-readable) and Alice's ``queue.d`` file both hold
    id ``same``: the daemon reads ``queue.jsonl`` first, takes root's, and rejects Alice's as
    another user's id. Alice's ``jobs`` listed hers as submitted, her ``status`` showed hers,
    and her ``submit --id same`` gave no warning: they looked in her own file only. They now
    include ``queue.jsonl`` in the judgement: ``jobs`` lists only ``mine``, ``status`` shows
    root's line, ``cancel`` refuses it as root's, and ``submit`` warns that the daemon will
    reject her line, naming ``queue.jsonl``."""
    queue, hers = _main_and_alices(tmp_path, job_line(id="same") + job_line(id="mine"))
    state = ("--state-dir", str(tmp_path))

    with monkeypatch.context() as alice:
        alice.setattr(os, "getuid", lambda: ALICE)
        code, out, _ = run_cli(capsys, "jobs", *state, "--json")
        assert code == 0 and [j["job_id"] for j in json.loads(out)] == ["mine"]
        code, out, _ = run_cli(capsys, "status", "same", *state, "--json")
        assert code == 0 and json.loads(out)["queue_file"] == str(queue)
        code, out, err = run_cli(capsys, "cancel", "same", *state)
        assert (code, out) == (2, "")
        assert err.startswith(f"carbond: error: job same belongs to {user_name(0)}, not to you")
        code, out, err = run_cli(capsys, "submit", *state, "--id", "same", "--model",
                                 "llama-1b", "--", "/bin/echo", "hi")  # fmt: skip
        assert code == 0 and out == f"submitted same to {hers}\n"
        assert f"an unread line of {queue} ({user_name(0)}'s" in err
        assert "the daemon will take that job and reject this line" in err
        code, _, err = run_cli(capsys, "submit", *state, "--id", "mine", "--model",
                               "llama-1b", "--", "/bin/echo", "hi")  # fmt: skip
        assert code == 0 and f"an unread line of {hers} already has id 'mine'" in err
    assert queue.read_text() == job_line(id="same")

    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor)
    service.start(clock())
    service.tick(clock())
    service.close()
    assert (service.ledger.job("same").uid, service.ledger.job("mine").uid) == (0, ALICE)
    rejected = [json.loads(r) for r in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert [(r["file"], r["line_no"]) for r in rejected] == [
        (f"queue.d/{ALICE}.jsonl", 1), (f"queue.d/{ALICE}.jsonl", 3)
    ]  # fmt: skip


def test_a_main_queue_whose_owner_is_unknown_takes_no_id_before_a_users_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``queue.jsonl``'s owner has no passwd entry (a user database outage): the daemon
    holds its lines unread until the lookup succeeds and meanwhile reads Alice's file, so her
    line takes id ``same``. Her ``jobs`` and ``status`` judged hers with ``queue.jsonl``'s
    line first all the same: ``jobs`` left ``same`` out and ``status`` showed the held
    line. They now agree with the daemon: her ``same`` is hers, submitted."""
    queue, hers = _main_and_alices(tmp_path, job_line(id="same"))
    os.chown(queue, uid_without_user(), 0)
    state = ("--state-dir", str(tmp_path))

    with monkeypatch.context() as alice:
        alice.setattr(os, "getuid", lambda: ALICE)
        code, out, _ = run_cli(capsys, "jobs", *state, "--json")
        assert code == 0 and [j["job_id"] for j in json.loads(out)] == ["same"]
        code, out, _ = run_cli(capsys, "status", "same", *state, "--json")
        assert code == 0 and json.loads(out)["queue_file"] == str(hers)

    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor)
    service.start(clock())
    service.tick(clock())
    service.close()
    assert service.ledger.job("same").uid == ALICE  # the daemon took hers
    assert QUEUE_NAME not in service.ledger.queue_files()  # and has not read queue.jsonl
