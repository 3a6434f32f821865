"""``carbond run`` warns of a config file every user can read that holds the Electricity Maps
token (``config_token_readable``, naming the file and its mode, never the token), at start and
on each reload: ``carbond doctor`` failed such a file, but the daemon started silently, so an
operator who never ran doctor had every user's jobs able to read the token. The check is
doctor's own (:func:`daemon.doctor.token_file.token_file_problem`)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.cli.real_daemon import CONFIG, DEADLINE_S, Daemon, until

pytestmark = pytest.mark.slow

SECRET = "tok-5b2d90aa"
# no live API call with a token no one issued: the static averages
EXTRA = f'[intensity]\nsource = "static"\n[electricitymaps]\ntoken = "{SECRET}"\n'


def _events(log: Path, event: str) -> list[dict[str, Any]]:
    lines = log.read_text().splitlines()
    return [e for e in (json.loads(x) for x in lines if x.startswith("{")) if e["event"] == event]


def _reload(daemon: Daemon) -> None:
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.expect("RELOADING=1")
    daemon.expect("READY=1")


def test_a_token_in_a_config_others_read_is_logged_at_start_and_on_a_reload(
    tmp_path: Path,
) -> None:
    config = tmp_path / "carbond.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state", port=0) + EXTRA)
    config.chmod(0o644)
    log = tmp_path / "daemon.log"
    daemon = Daemon(tmp_path, config)
    try:
        daemon.expect("READY=1")
        until("the warning at start", lambda: len(_events(log, "config_token_readable")) == 1)

        config.chmod(0o604)
        _reload(daemon)
        until("the warning on a reload", lambda: len(_events(log, "config_token_readable")) == 2)

        config.chmod(0o600)  # fixed: the next reload says nothing
        _reload(daemon)
        until("the third reload", lambda: len(_events(log, "reload_applied")) == 2)

        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=DEADLINE_S) == 0
    finally:
        daemon.close()
    warned = _events(log, "config_token_readable")
    assert [(e["level"], e["file"], e["mode"]) for e in warned] == [
        ("warning", str(config), "0644"),
        ("warning", str(config), "0604"),
    ]
    assert "every user can read" in warned[0]["problem"]
    assert SECRET not in log.read_text()
