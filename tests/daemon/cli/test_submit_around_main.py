"""``carbond submit`` by the state dir's owner (the daemon's uid) goes around a ``queue.jsonl``
with more than one hard link, or writable by other users, to its spool file, and notes the
main file and the fix ``carbond doctor`` names: the daemon rejects every line of such a file
("its owner cannot vouch for its lines"). Until 2026-12-07 submit judged the main file by its
owner and mode alone, so every job it appended to a hard-linked one was rejected, though the
command said it was queued; until 2026-12-08 it went around a writable one without a word."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.ledger import Ledger
from daemon.queue import QUEUE_NAME, SPOOL_DIR
from daemon.queue.ingest import Queue
from daemon.settings import load_settings
from tests.daemon.cli.private_config import write_config

NOW = datetime(2024, 6, 1, tzinfo=UTC)
_SUBMIT = ["--json", "--model", "llama-1b", "--requests", "8", "--", "/bin/true"]


pytestmark = pytest.mark.usefixtures("usual_umask")


def _set_up(tmp_path: Path, private: bool) -> tuple[Path, Path]:
    """``(config, state dir)`` as ``carbond run`` leaves them at its start."""
    state = tmp_path / "state"
    config = write_config(tmp_path, state, private)
    with Ledger.open(state / "ledger.db") as ledger:
        Queue.from_settings(load_settings(config), ledger).prepare()
    return config, state


def _ingest(config: Path, state: Path) -> tuple[str, ...]:
    with Ledger.open(state / "ledger.db") as ledger:
        queue = Queue.from_settings(load_settings(config), ledger)
        queue.prepare()
        return queue.ingest(NOW).accepted


@pytest.mark.parametrize(("private", "mode"), [(False, "0644"), (True, "0600")])
def test_submit_goes_around_a_hard_linked_queue_jsonl_and_names_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], private: bool, mode: str
) -> None:
    config, state = _set_up(tmp_path, private)
    queue = state / QUEUE_NAME
    os.link(queue, tmp_path / "other-name")

    assert main(["submit", "--config", str(config), *_SUBMIT]) == 0

    out, err = capsys.readouterr()
    job_id = json.loads(out)["job_id"]
    assert queue.read_bytes() == b""  # not where every line is rejected
    spool = state / SPOOL_DIR / f"{os.getuid()}.jsonl"
    assert json.loads(spool.read_text())["id"] == job_id
    moved = shlex.quote(str(queue))
    assert err == (
        f"carbond: note: {queue} has 2 hard links: the daemon rejects every line of it (its "
        f"owner cannot vouch for them), so this line went to {spool}; to fix it, the daemon "
        f"stopped, its owner moves it away (e.g. `mv {moved} ~/old-queue.jsonl`) and starts the "
        f"daemon: `carbond run` creates a new one (mode {mode}); lines of it not yet read go "
        "with it, to be submitted again\n"
    )
    assert _ingest(config, state) == (job_id,)


@pytest.mark.parametrize(("private", "mode"), [(False, "0644"), (True, "0600")])
@pytest.mark.parametrize("queue_mode", [0o664, 0o646], ids=["group", "others"])
def test_submit_goes_around_a_queue_jsonl_others_can_write_and_names_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], private: bool, mode: str, queue_mode: int
) -> None:
    config, state = _set_up(tmp_path, private)
    queue = state / QUEUE_NAME
    queue.chmod(queue_mode)

    assert main(["submit", "--config", str(config), *_SUBMIT]) == 0

    out, err = capsys.readouterr()
    job_id = json.loads(out)["job_id"]
    assert queue.read_bytes() == b""
    spool = state / SPOOL_DIR / f"{os.getuid()}.jsonl"
    assert json.loads(spool.read_text())["id"] == job_id
    moved = shlex.quote(str(queue))
    assert err == (
        f"carbond: note: {queue} is writable by other users (mode {queue_mode:04o}): the daemon "
        f"rejects every line of it (its owner cannot vouch for them), so this line went to "
        f"{spool}; to fix it, the daemon stopped, its owner moves it away (e.g. `mv {moved} "
        f"~/old-queue.jsonl`) and starts the daemon: `carbond run` creates a new one (mode "
        f"{mode}); lines of it not yet read go with it, to be submitted again\n"
    )
    assert _ingest(config, state) == (job_id,)


def test_a_queue_jsonl_both_writable_and_linked_is_named_writable_as_doctor_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, state = _set_up(tmp_path, False)
    queue = state / QUEUE_NAME
    queue.chmod(0o666)
    os.link(queue, tmp_path / "other-name")

    assert main(["submit", "--config", str(config), *_SUBMIT]) == 0

    err = capsys.readouterr().err
    assert err.startswith(f"carbond: note: {queue} is writable by other users (mode 0666): ")
    assert err.count("carbond: note:") == 1


@pytest.mark.parametrize(
    ("make_bad", "note"),
    [
        (os.link, "has 2 hard links"),
        (lambda queue, _: queue.chmod(0o664), "is writable by other users (mode 0664)"),
    ],
    ids=["hard-linked", "writable"],
)
def test_cancel_goes_around_it_too_with_the_note(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make_bad: Callable[[Path, Path], None],
    note: str,
) -> None:
    config, state = _set_up(tmp_path, False)
    assert main(["submit", "--config", str(config), *_SUBMIT]) == 0
    job_id = json.loads(capsys.readouterr().out)["job_id"]
    assert _ingest(config, state) == (job_id,)
    queue = state / QUEUE_NAME
    size = queue.stat().st_size
    make_bad(queue, tmp_path / "other-name")

    assert main(["cancel", "--config", str(config), job_id]) == 0

    assert queue.stat().st_size == size
    spool = state / SPOOL_DIR / f"{os.getuid()}.jsonl"
    assert json.loads(spool.read_text()) == {"cancel": job_id}
    assert note in capsys.readouterr().err


def test_a_single_link_queue_jsonl_is_appended_to_without_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, state = _set_up(tmp_path, False)
    assert main(["submit", "--config", str(config), *_SUBMIT]) == 0
    out, err = capsys.readouterr()
    assert json.loads((state / QUEUE_NAME).read_text())["id"] == json.loads(out)["job_id"]
    assert err == ""
