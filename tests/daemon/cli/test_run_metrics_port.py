"""``carbond run`` whose metrics port another program holds: any local user may bind an
unprivileged port on 127.0.0.1 before the daemon (re)starts. It used to stop at start ("metrics:
cannot listen"), so that user kept the scheduler down; it now logs ``metrics_unavailable`` and
runs the jobs, and says so in ``health.json``, so that ``carbond doctor`` does not pass a
daemon that Prometheus cannot scrape (a carbond of another state dir on that port answered
its scrapes, and doctor's metrics line passed it as "served by a running carbond")."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from daemon.supervision.health import HEALTH_NAME, read_health
from tests.daemon.cli.real_daemon import CONFIG, Daemon, state_of, submit, until

pytestmark = pytest.mark.slow


def test_a_held_metrics_port_does_not_stop_the_daemon(tmp_path: Path) -> None:
    squatter = socket.socket()  # a real listener on the daemon's port, as another user's
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    state = tmp_path / "state"
    config = tmp_path / "carbond.toml"
    config.write_text(CONFIG.format(state=state, port=port))
    daemon = Daemon(tmp_path, config)
    try:
        daemon.expect("READY=1")
        submit(state, "despite-metrics", [sys.executable, "-c", "print('ran')"])
        until("the job to succeed", lambda: state_of(state, "despite-metrics") == "succeeded")
        assert (state / "logs" / "despite-metrics.out").read_text() == "ran\n"
        until("health.json", lambda: read_health(state / HEALTH_NAME) is not None)
        report = read_health(state / HEALTH_NAME)
        assert report is not None
        assert f"127.0.0.1:{port}" in report.problems["metrics"]
        assert "without /metrics" in report.problems["metrics"]
    finally:
        daemon.close()
        squatter.close()
    events = [json.loads(line) for line in (tmp_path / "daemon.log").read_text().splitlines()
              if line.startswith("{")]  # fmt: skip
    [event] = [e for e in events if e.get("event") == "metrics_unavailable"]
    assert event["address"] == f"127.0.0.1:{port}"
    assert "cannot listen" in event["error"]
    assert not [e for e in events if e.get("event") == "metrics_listening"]
