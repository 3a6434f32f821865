"""A long queue: ``carbond jobs`` and the submit-to-ingest delay with 110,000 waiting jobs.

Builds a state dir whose ledger holds ``JOBS`` queued jobs, then times, as subprocesses:

- ``carbond jobs`` (the default page with totals) and ``carbond jobs --json`` (every job,
  streamed to /dev/null): wall time and peak RSS of each;
- with the daemon down and ``JOBS`` job lines unread in ``queue.jsonl`` (no ledger yet):
  ``carbond jobs``, ``carbond status ID`` of the last line and of an id no line has (it looks
  for a job line, then for a line the daemon will reject: exit 2), ``carbond cancel`` of
  such an id (exit 2) and ``carbond submit --id`` of an id no line has (its duplicate check),
  each against ``carbond --version`` (start-up alone);
- the real ``carbond run`` (run-now, 4 simulated GPUs whose jobs outlast the bench, default
  intervals: ingest every 2 s, plan every 30 s) with those jobs waiting: ``SUBMITS`` jobs
  appended to the queue at random moments, each timed until the ledger has it. The documented
  bound is ``intervals.ingest_s``.

``python -m bench waiting`` (``JOBS`` and ``SUBMITS`` below; about 2 minutes on 2 cores).
"""

from __future__ import annotations

import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import structlog

from daemon.ledger import Ledger, UnknownJobError
from daemon.queue.ingest import Queue

JOBS = 110_000
SUBMITS = 12
REPO = Path(__file__).resolve().parents[1]
CONFIG = """
state_dir = "{state}"
[policy]
name = "run-now"
[intensity]
source = "static"
[metrics]
port = 0
[log]
format = "json"
[executors.simulated]
truth_factor = 1000000.0
[[regions]]
name = "sim"
zone = "CA-QC"
executor = "simulated"
gpus = ["T4", "T4", "T4", "T4"]
"""
LINE = {"model": "llama-1b", "requests": 8, "command": ["true"]}


def _build(state: Path) -> None:
    with Ledger.open(state / "ledger.db", durable=False) as ledger:
        queue = Queue(state, ledger, compact_min_bytes=10**12)
        queue.prepare()
        queue.path.write_text(
            "".join(json.dumps({**LINE, "id": f"w{i}"}) + "\n" for i in range(JOBS))
        )
        accepted = 0
        while accepted < JOBS:  # a pass reads at most ``FileReader.pass_bytes`` of one file
            batch = len(queue.ingest(datetime.now(UTC)).accepted)
            assert batch, f"ingestion stopped at {accepted} of {JOBS} jobs"
            accepted += batch


def _unread_state(root: Path) -> Path:
    """A state dir no daemon has read: ``JOBS`` job lines in its ``queue.jsonl``, no ledger."""
    state = root / "unread"
    state.mkdir()
    (state / "queue.jsonl").write_text(
        "".join(json.dumps({**LINE, "id": f"u{i}"}) + "\n" for i in range(JOBS))
    )
    return state


def _unread_lookups(state: Path) -> None:
    """Print the wall time of each command reading the unread lines of ``state``."""
    at = ["--state-dir", str(state)]
    for label, argv in (
        ("--version (start-up)", ["--version"]),
        ("jobs", ["jobs", *at]),
        ("status (its last line)", ["status", *at, f"u{JOBS - 1}"]),
        ("status (an unknown id)", ["status", *at, "nosuch"]),
        ("cancel (an unknown id)", ["cancel", *at, "nosuch"]),
        ("submit --id (a new id)", ["submit", *at, "--id", "fresh", "--model", "llama-1b",
                                    "--", "true"]),
    ):  # fmt: skip
        code = 2 if "unknown" in label else 0  # no such job
        wall_s, _ = _timed(argv, stderr=subprocess.DEVNULL, code=code)  # notes: no ledger, ...
        print(f"{JOBS:,} unread, carbond {label:22s}: {wall_s:5.2f} s")


def _timed(argv: list[str], stderr: int | None = None, code: int = 0) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one ``python -m daemon`` run, output discarded
    (``stderr`` too with ``subprocess.DEVNULL``), which must exit ``code``."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "daemon", *argv], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=stderr)  # fmt: skip
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == code, argv
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def _delays(root: Path, state: Path) -> list[float]:
    config = root / "carbond.toml"
    config.write_text(CONFIG.format(state=state))
    log = root / "daemon.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBOND_")}
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(config)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    rng = random.Random(1)
    delays = []
    try:
        while '"job_dispatched"' not in log.read_text():  # started, first plan done
            assert daemon.poll() is None, log.read_text()[-2000:]
            time.sleep(0.1)
        with Ledger.open_readonly(state / "ledger.db") as ledger:
            for k in range(SUBMITS):
                time.sleep(rng.uniform(0.5, 5.0))
                with (state / "queue.jsonl").open("a") as queue:
                    queue.write(json.dumps({**LINE, "id": f"late{k}"}) + "\n")
                sent = time.perf_counter()
                while True:
                    try:
                        ledger.job(f"late{k}")
                        break
                    except UnknownJobError:
                        time.sleep(0.01)
                delays.append(time.perf_counter() - sent)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    return delays


def main() -> None:
    """Print the listing times and the delays."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        state = root / "state"
        state.mkdir()
        start = time.perf_counter()
        _build(state)
        print(f"{JOBS:,} queued jobs ingested in {time.perf_counter() - start:.1f} s")
        for argv in (["jobs"], ["jobs", "--json"]):
            wall_s, rss_mib = _timed([*argv, "--state-dir", str(state)])
            print(f"carbond {' '.join(argv):12s}: {wall_s:5.2f} s, peak RSS {rss_mib:.0f} MiB")
        _unread_lookups(_unread_state(root))
        delays = _delays(root, state)
        print(f"submit-to-ingest with {JOBS:,} waiting, ingest_s 2.0, {SUBMITS} submits: "
              f"median {statistics.median(delays):.2f} s, max {max(delays):.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
