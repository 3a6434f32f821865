"""Queue ingestion and planning throughput of the daemon core.

Prints lines/s for ingesting a queue file into a durable (``synchronous=FULL``) and a scratch
ledger, and the time of one ``Service.tick`` that plans and dispatches N waiting jobs on the
paper's four GPUs with ``run-now`` (most jobs are held: the GPUs are busy).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import structlog

from daemon.intensity.providers import EmbeddedIntensity
from daemon.inventory import build_inventory
from daemon.ledger import Ledger
from daemon.queue.ingest import Queue
from daemon.service import Service
from daemon.settings import PolicySettings, RegionSettings, Settings
from daemon.testing import RecordingExecutor
from policies import get_policy

LINES = 20_000
WAITING = 500
NOW = datetime(2024, 6, 1, tzinfo=UTC)
REGIONS = (
    RegionSettings(name="qc", zone="CA-QC", gpus=("T4",)),
    RegionSettings(name="ciso", zone="US-CAL-CISO", gpus=("RTX6000-Ada",) * 2),
    RegionSettings(name="pace", zone="US-NW-PACE", gpus=("RTX6000-Ada",)),
)


def _write_queue(path: Path, n: int) -> None:
    line = {"model": "llama-1b", "requests": 8, "command": ["true"]}
    path.write_text("".join(json.dumps({**line, "id": f"j{i}"}) + "\n" for i in range(n)))


def _ingest(durable: bool) -> float:
    with (
        tempfile.TemporaryDirectory() as tmp,
        Ledger.open(Path(tmp) / "ledger.db", durable=durable) as ledger,
    ):
        queue = Queue(Path(tmp), ledger, compact_min_bytes=10**12)
        queue.prepare()
        _write_queue(queue.path, LINES)
        start = time.perf_counter()
        accepted = len(queue.ingest(NOW).accepted)
        elapsed = time.perf_counter() - start
    assert accepted == LINES
    return LINES / elapsed


def _tick() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        with Ledger.open(state / "ledger.db", durable=False) as ledger:
            policy = PolicySettings(name="run-now")
            settings = Settings(state_dir=state, regions=REGIONS, policy=policy)
            executor = RecordingExecutor(auto_finish=False)
            service = Service(
                settings=settings, ledger=ledger, queue=Queue.from_settings(settings, ledger),
                executors={"local": executor}, inventory=build_inventory(REGIONS),
                intensity=EmbeddedIntensity(), policy=get_policy("run-now"),
            )  # fmt: skip
            service.start(NOW)
            _write_queue(service.queue.path, WAITING)
            service.ingest(NOW)
            service.refresh_intensity(NOW)
            start = time.perf_counter()
            service.plan(NOW)
            first = time.perf_counter() - start
            start = time.perf_counter()
            service.plan(NOW)  # decisions unchanged: nothing recorded
            second = time.perf_counter() - start
    print(f"plan with {WAITING} waiting jobs, 4 GPUs: first {first * 1e3:.0f} ms "
          f"(records {WAITING} decisions), steady {second * 1e3:.0f} ms")  # fmt: skip
    return second


def main() -> None:
    """Print the throughputs (log events below WARNING are silenced)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(f"ingest {LINES} lines, durable ledger: {_ingest(True):,.0f} lines/s")
    print(f"ingest {LINES} lines, scratch ledger: {_ingest(False):,.0f} lines/s")
    _tick()


if __name__ == "__main__":
    main()
