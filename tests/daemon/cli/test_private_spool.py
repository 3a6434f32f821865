"""With ``[ledger] private = true`` a user's spool file is theirs alone: ``carbond submit``
and ``cancel`` create ``queue.d/<uid>.jsonl`` 0600 (until 2026-12-07 0644 under the usual
umask, so every queued job's argv and cwd stayed readable by other users, which the private
ledger hides); an existing file keeps its mode, and a note says how to make it private."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.ledger import Ledger
from daemon.queue import SPOOL_DIR
from daemon.queue.ingest import Queue
from tests.daemon.cli.private_config import write_config

pytestmark = pytest.mark.usefixtures("usual_umask")


def _setup(tmp_path: Path, private: bool) -> tuple[Path, Path]:
    """``(config, the caller's spool file)``: a state dir a daemon set up, whose
    ``queue.jsonl`` is not the caller's own private file, so their lines go to the spool."""
    state = tmp_path / "state"
    with Ledger.open(state / "ledger.db") as ledger:
        Queue(state, ledger).prepare()
    (state / "queue.jsonl").chmod(0o664)  # goes around it, as another user's would be
    config = write_config(tmp_path, state, private)
    return config, state / SPOOL_DIR / f"{os.getuid()}.jsonl"


def _submit(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    argv = ["submit", "--config", str(config), "--json", "--model", "llama-1b",
            "--requests", "8", "--deadline", "+8h", "--", "/bin/true", "--secret"]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    return json.loads(out)["job_id"], _without_main_note(err, config.parent / "state")


def _without_main_note(err: str, state: Path) -> str:
    """``err`` less the one note on the caller's own ``queue.jsonl`` gone around (0664 here:
    :func:`_setup`), which ``test_submit_around_main.py`` pins."""
    main_note = f"carbond: note: {state / 'queue.jsonl'} is writable by other users (mode 0664)"
    lines = err.splitlines(keepends=True)
    assert sum(line.startswith(main_note) for line in lines) == 1, err
    return "".join(line for line in lines if not line.startswith(main_note))


@pytest.mark.parametrize(("private", "mode"), [(True, 0o600), (False, 0o644)])
def test_submit_creates_the_spool_file_private_when_the_ledger_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], private: bool, mode: int
) -> None:
    config, spool = _setup(tmp_path, private)

    job_id, err = _submit(config, capsys)

    assert f"{spool.stat().st_mode & 0o777:04o}" == f"{mode:04o}"
    assert json.loads(spool.read_text())["id"] == job_id
    assert err == ""


def test_a_cancel_creates_the_spool_file_private_when_the_ledger_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, spool = _setup(tmp_path, True)
    job_id, _ = _submit(config, capsys)
    with Ledger.open(spool.parents[1] / "ledger.db") as ledger:  # the daemon reads the job
        assert Queue(spool.parents[1], ledger).ingest(datetime.now(UTC)).accepted == (job_id,)
    capsys.readouterr()  # the daemon's log (its queue.jsonl, 0664 here, is queue_file_writable)
    spool.unlink()  # its owner removed it since

    assert main(["cancel", "--config", str(config), job_id]) == 0

    out, err = capsys.readouterr()
    assert out.startswith(f"cancel requested for {job_id} (was ")
    assert _without_main_note(err, spool.parents[1]) == ""
    assert f"{spool.stat().st_mode & 0o777:04o}" == "0600"
    assert json.loads(spool.read_text()) == {"cancel": job_id}


def test_an_existing_readable_spool_file_keeps_its_mode_and_is_noted_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, spool = _setup(tmp_path, True)
    spool.write_text("")
    spool.chmod(0o644)  # made before the ledger was private

    job_id, err = _submit(config, capsys)

    assert f"{spool.stat().st_mode & 0o777:04o}" == "0644"
    assert json.loads(spool.read_text())["id"] == job_id
    assert err == (
        f"carbond: note: {spool} is readable by other users (mode 0644), though this carbond "
        "keeps its ledger private: your queued jobs' argv and cwd show there; "
        f"`chmod 600 {spool}` makes it private (a reader who opened it before keeps it)\n"
    )
