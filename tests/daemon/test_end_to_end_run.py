"""The issue's end-to-end test on the production path: ``carbond run`` with the local executor.

The same load as ``test_end_to_end.py`` (200 jobs from 4 concurrent submitters, ``carbond
submit`` and raw appends with partial and garbage lines, a resubmitted id), but the daemon is
the real ``carbond run`` (APScheduler loop, systemd notify, local executor with its wrapper,
start markers and status files), killed with SIGKILL at random moments and restarted. Every
job is ingested once, runs once and succeeds.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.ledger import Ledger
from tests.daemon.submitters import GARBAGE, RAW_APPENDER, SUBMITTER

REPO = Path(__file__).resolve().parents[2]
JOBS_PER_SUBMITTER = 50
FINAL = {"succeeded", "failed", "cancelled", "expired"}

CONFIG = """
state_dir = "{state}"
[policy]
name = "run-now"
[intervals]
ingest_s = 0.05
plan_s = 0.1
reconcile_s = 0.05
[queue]
compact_min_bytes = 4096
retired_grace_s = 1.0
[metrics]
port = 0
[log]
format = "json"
[[regions]]
name = "local"
zone = "CA-QC"
executor = "local"
gpus = ["T4", "T4", "T4", "T4", "T4", "T4", "T4", "T4"]
"""


# A real daemon on a loaded 2-core runner took over 30 s to start with a cold numba cache:
# every wait is on its condition, with a deadline only a hang reaches.
DEADLINE_S = 300.0


def _start(config: Path, log: Path, notify: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(config)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NOTIFY_SOCKET": notify},
        )


def _wait_ready(sock: socket.socket, daemon: subprocess.Popen[bytes]) -> None:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        try:
            if sock.recv(4096).startswith(b"READY=1"):
                return
        except TimeoutError:
            assert daemon.poll() is None, "the daemon exited during start-up; see daemon.log"
    raise AssertionError(f"no READY=1 within {DEADLINE_S} s")


def _final_count(state: Path) -> int:
    if not (state / "ledger.db").exists():
        return 0
    with Ledger.open_readonly(state / "ledger.db") as ledger:
        return sum(n for s, n in ledger.counts_by_state().items() if s in FINAL)


@pytest.mark.slow
def test_carbond_run_200_jobs_4_submitters_kill_9_restarts(tmp_path: Path) -> None:
    state, runs, log = tmp_path / "state", tmp_path / "runs.log", tmp_path / "daemon.log"
    state.mkdir()
    config = tmp_path / "carbond.toml"
    config.write_text(CONFIG.format(state=state))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(0.2)
    daemon = _start(config, log, str(tmp_path / "notify"))
    try:
        _wait_ready(sock, daemon)
        n = JOBS_PER_SUBMITTER
        scripts = [SUBMITTER.format(n=n)] * 2 + [RAW_APPENDER.format(n=n, garbage=GARBAGE)] * 2
        env = dict(os.environ, PYTHONPATH=str(REPO))
        submitters = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(state), str(runs), f"s{k}"],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
            )
            for k, script in enumerate(scripts)
        ]
        rng = random.Random(4)
        kills = 0
        while kills < 8 or any(p.poll() is None for p in submitters):
            time.sleep(rng.uniform(0.1, 0.8))
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            kills += 1
            daemon = _start(config, log, str(tmp_path / "notify"))
            _wait_ready(sock, daemon)
        assert [p.wait() for p in submitters] == [0, 0, 0, 0]
        end = time.monotonic() + DEADLINE_S
        while _final_count(state) < 4 * n and time.monotonic() < end:
            time.sleep(0.1)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=DEADLINE_S) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        sock.close()

    expected = {f"s{k}-{i}" for k in range(4) for i in range(n)}
    with Ledger.open_readonly(state / "ledger.db") as ledger:
        jobs = {job.job_id: job.state for job in ledger.jobs()}
    assert set(jobs) == expected, "every job ingested exactly once"
    assert set(jobs.values()) == {"succeeded"}, "every job reached a final state and succeeded"
    assert sorted(runs.read_text().split()) == sorted(expected), "every job ran exactly once"
    rejected = [json.loads(line) for line in (state / "rejected.jsonl").read_text().splitlines()]
    assert {r["line"] for r in rejected} == set(GARBAGE)
    assert kills >= 8
