"""The real daemon process under load and kill -9: no job lost, none ingested or run twice.

200 jobs come from 4 concurrent submitters: two use ``carbond submit`` (the CLI's code in
their own processes, with ``flock``), two append raw lines, one to the main queue, one to its own
spool file ``queue.d/<uid>.jsonl`` where it splits some lines in two writes (so the daemon sees
partial lines); garbage lines between them; a resubmitted id. Meanwhile the daemon is killed
with SIGKILL at random moments and restarted. Each job appends its id to ``runs.log`` when it
runs (one in ten takes 2 s, so some are still running when the daemon dies and are re-adopted).
The daemon is ``carbond run`` itself (APScheduler loop, real Service, real local executor).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.ledger import Ledger
from tests.daemon.submitters import GARBAGE, RAW_APPENDER, SUBMITTER

REPO = Path(__file__).resolve().parents[2]
JOBS_PER_SUBMITTER = 50

CONFIG = """
state_dir = "{state}"

[log]
format = "json"

[metrics]
port = 0

[policy]
name = "run-now"

[intensity]
source = "static"

[intervals]
ingest_s = 0.1
plan_s = 0.1
reconcile_s = 0.1

[queue]
compact_min_bytes = 4096
retired_grace_s = 1.0

[executors.local]
grace_s = 5.0

[[regions]]
name = "local"
zone = "CA-QC"
executor = "local"
gpus = ["T4", "T4", "T4", "T4", "T4", "T4", "T4", "T4"]
"""


def _start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``carbond run --config CONFIG`` (as ``python -m daemon``), logging to ``log``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBOND_")}
    env.pop("NOTIFY_SOCKET", None)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(config)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip


def _wait_ready(log: Path, starts: int, daemon: subprocess.Popen[bytes]) -> None:
    """Wait for the ``starts``-th ``service_started`` event (the daemon re-adopted its jobs)."""
    for _ in range(600):
        if log.read_text().count('"service_started"') >= starts or daemon.poll() is not None:
            break
        time.sleep(0.05)
    assert daemon.poll() is None, f"the daemon exited during start-up; see {log}"


def _final_count(state: Path) -> int:
    if not (state / "ledger.db").exists():
        return 0
    with Ledger.open_readonly(state / "ledger.db") as ledger:
        counts = ledger.counts_by_state()
    return sum(n for s, n in counts.items() if s in {"succeeded", "failed", "cancelled",
                                                    "expired"})  # fmt: skip


@pytest.mark.slow
def test_200_jobs_4_submitters_kill_9_restarts(tmp_path: Path) -> None:
    state, runs, log = tmp_path / "state", tmp_path / "runs.log", tmp_path / "daemon.log"
    state.mkdir()
    config = tmp_path / "carbond.toml"
    config.write_text(CONFIG.format(state=state))
    t0 = time.monotonic()
    daemon = _start_daemon(config, log)
    starts = 1
    _wait_ready(log, starts, daemon)
    print(f"daemon ready after {time.monotonic() - t0:.1f} s")
    n = JOBS_PER_SUBMITTER
    scripts = [SUBMITTER.format(n=n)] * 2 + [RAW_APPENDER.format(n=n, garbage=GARBAGE)] * 2
    env = dict(os.environ, PYTHONPATH=str(REPO))
    submitters = [
        subprocess.Popen([sys.executable, "-c", script, str(state), str(runs), f"s{k}"],
                         cwd=REPO, env=env)
        for k, script in enumerate(scripts)
    ]  # fmt: skip
    rng = random.Random(4)
    kills = 0
    while kills < 8 or any(p.poll() is None for p in submitters):
        time.sleep(rng.uniform(0.1, 0.8))
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        kills += 1
        if rng.random() < 0.25:  # sometimes kill it again while it starts up and re-adopts
            daemon = _start_daemon(config, log)
            time.sleep(rng.uniform(0.0, 0.6))
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            kills += 1
        starts = log.read_text().count('"service_started"') + 1
        daemon = _start_daemon(config, log)
        _wait_ready(log, starts, daemon)
    assert [p.wait() for p in submitters] == [0, 0, 0, 0]
    print(f"submitters done after {time.monotonic() - t0:.1f} s, {kills} kills")
    for _ in range(600):  # up to ~30 s for the last jobs to finish
        if _final_count(state) >= 4 * n:
            break
        time.sleep(0.05)
    print(f"all final after {time.monotonic() - t0:.1f} s")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=10) == 0

    expected = {f"s{k}-{i}" for k in range(4) for i in range(n)}
    with Ledger.open_readonly(state / "ledger.db") as ledger:
        jobs = {job.job_id: job.state for job in ledger.jobs()}
    assert set(jobs) == expected, "every job ingested exactly once"
    assert set(jobs.values()) == {"succeeded"}, "every job reached a final state and succeeded"
    ran = runs.read_text().split()
    assert sorted(ran) == sorted(expected), "every job ran exactly once"
    rejected = [json.loads(line) for line in (state / "rejected.jsonl").read_text().splitlines()]
    assert {r["line"] for r in rejected} == set(GARBAGE)
    assert all(r["reason"].startswith(f"line {r['line_no']}: ") for r in rejected)
    assert kills >= 8
