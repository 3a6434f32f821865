"""Helpers for the ``carbond doctor`` tests: a healthy setup to break (``healthy_setup``, its
config template ``CONFIG``), what ``carbond run`` does to the queue at its start
(``start_daemon``) and doctor's checks run in-process (``run_doctor``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from daemon.doctor.checks import run_checks
from daemon.ledger import Ledger
from daemon.queue.ingest import Queue
from daemon.settings import load_settings

CONFIG = """
state_dir = "{state}"
[policy]
name = "{policy}"
[[regions]]
name = "qc"
zone = "CA-QC"
executor = "local"
gpus = ["T4"]
"""


def healthy_setup(tmp_path: Path, policy: str = "run-now") -> tuple[Path, Path]:
    """A state dir (``tmp_path/state``) with a ledger and a prepared queue, and a config file
    (``tmp_path/carbond.toml``) naming it, ``policy`` and one local region ``qc`` with a T4:
    ``(state, config)``."""
    state = tmp_path / "state"
    with Ledger.open(state / "ledger.db") as ledger:
        Queue(state, ledger).prepare()
    config = tmp_path / "carbond.toml"
    config.write_text(CONFIG.format(state=state, policy=policy))
    return state, config


def start_daemon(config: Path) -> None:
    """What ``carbond run --config config`` does to the queue at its start (creates a missing
    ``queue.jsonl``, 0600 with a private ledger)."""
    settings = load_settings(config)
    with Ledger.open(settings.state_dir / "ledger.db") as ledger:
        Queue.from_settings(settings, ledger).prepare()


def run_doctor(config: Path) -> tuple[int, dict[str, str]]:
    """``carbond doctor --config config`` in-process: its exit code and each check's
    ``"status: detail"`` by check name."""
    checks = run_checks(config, datetime.now(UTC))
    code = 1 if any(c.status == "fail" for c in checks) else 0
    return code, {c.name: f"{c.status}: {c.detail}" for c in checks}
