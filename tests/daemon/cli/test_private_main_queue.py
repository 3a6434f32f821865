"""With ``[ledger] private = true``, ``queue.jsonl`` is the daemon's alone: ``carbond run``
creates it 0600 (until 2026-12-07 0644 whatever the setting, so every user could read the
argv and cwd of the jobs root queued there with ``carbond submit`` or an appended line, which
the private ledger hides). An existing file keeps its mode, and ``carbond doctor``'s ``queue``
line names it with the ``chmod`` that makes it private."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.ledger import Ledger
from daemon.queue import QUEUE_NAME
from daemon.queue.ingest import Queue
from daemon.settings import load_settings
from tests.daemon.cli.private_config import write_config
from tests.daemon.doctor.doctor_setup import run_doctor

pytestmark = pytest.mark.usefixtures("usual_umask")


def _daemon_started(tmp_path: Path, private: bool) -> tuple[Path, Path]:
    """``(config, queue.jsonl)`` of a state dir the daemon of that config set up (its queue
    built from the config as ``carbond run`` builds it, and prepared as at its start)."""
    state = tmp_path / "state"
    config = write_config(tmp_path, state, private)
    settings = load_settings(config)
    with Ledger.open(state / "ledger.db") as ledger:
        Queue.from_settings(settings, ledger).prepare()
    return config, state / QUEUE_NAME


def _mode(path: Path) -> str:
    return f"{path.stat().st_mode & 0o777:04o}"


@pytest.mark.parametrize(("private", "mode"), [(True, "0600"), (False, "0644")])
def test_the_daemon_creates_queue_jsonl_private_when_the_ledger_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], private: bool, mode: str
) -> None:
    config, queue = _daemon_started(tmp_path, private)
    assert _mode(queue) == mode

    argv = ["submit", "--config", str(config), "--json", "--model", "llama-1b",
            "--requests", "8", "--deadline", "+8h", "--", "/bin/true", "--secret"]  # fmt: skip
    assert main(argv) == 0  # the state dir's owner: its line goes to queue.jsonl

    out, err = capsys.readouterr()
    assert json.loads(queue.read_text())["id"] == json.loads(out)["job_id"]
    assert _mode(queue) == mode and err == ""
    assert run_doctor(config)[1]["queue"].startswith("pass: ")


def test_an_existing_readable_queue_jsonl_keeps_its_mode_and_doctor_names_it(
    tmp_path: Path,
) -> None:
    _, queue = _daemon_started(tmp_path, False)  # made before the ledger was private

    config, _ = _daemon_started(tmp_path, True)

    assert _mode(queue) == "0644"
    code, checks = run_doctor(config)
    assert code == 1
    assert checks["queue"].startswith("fail: ")
    assert checks["queue"].endswith(
        f"; {queue} is readable by other users (mode 0644), though the ledger is private: "
        f"every job queued there shows its argv and cwd; `chmod 600 {queue}` makes it private"
    )
    queue.chmod(0o600)
    assert run_doctor(config)[1]["queue"].startswith("pass: ")
