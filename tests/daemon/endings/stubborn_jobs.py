"""A job that ignores SIGTERM, started and cleaned up after, and a short poll for what it leaves
behind: shared by the lost-GPU stop tests, the measurement tests' and ``prune-logs``' (a run
still being stopped keeps its files)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from daemon.executors.jobfiles import process_start_ticks
from daemon.executors.local import LocalExecutor
from daemon.ledger import RunRecord
from daemon.service import Service
from daemon.testing import FakeClock
from tests.daemon.helpers import append, job_line

__all__ = ["STUBBORN", "StubbornRun", "graced_executor", "started_stubborn", "wait_until"]

# argv[1]: a file the job touches once SIGTERM is ignored, so a test knows it runs
STUBBORN = (
    "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "pathlib.Path(sys.argv[1]).touch(); time.sleep(60)"
)


def wait_until(done: Callable[[], object], what: str) -> None:
    """Poll ``done`` every 10 ms for up to 5 s; fail the test with ``what`` if it never holds."""
    for _ in range(500):
        if done():
            return
        time.sleep(0.01)
    raise AssertionError(what)


def graced_executor(state: Path, monotonic_s: list[float]) -> LocalExecutor:
    """A local executor logging under ``state``, SIGKILL 10 s after a SIGTERM as counted on
    ``monotonic_s[0]`` (a test moves it on)."""
    return LocalExecutor(grace_s=10.0, log_dir=state / "logs", monotonic=lambda: monotonic_s[0])


@dataclass(frozen=True, slots=True)
class StubbornRun:
    """The stubborn job's run as the ledger has it, its pid, and that process's start ticks
    (``process_start_ticks(pid) == ticks`` while it still runs)."""

    run: RunRecord
    pid: int
    ticks: int | None


@contextmanager
def started_stubborn(
    service: Service, executor: LocalExecutor, clock: FakeClock, state: Path
) -> Iterator[StubbornRun]:
    """Submit job ``stubborn`` (``STUBBORN``, touching ``state / "ready"``), start it in one
    tick at ``clock()`` and wait until it ignores SIGTERM. On the way out, SIGKILL its
    process group if it still runs and reap its wrapper if ``executor`` has not."""
    ready = state / "ready"
    command = [sys.executable, "-c", STUBBORN, str(ready)]
    append(service.queue.path, job_line(id="stubborn", command=command))
    service.tick(clock())
    run = service.ledger.run("stubborn")
    assert run is not None and run.token is not None
    pid = json.loads(run.token)["pid"]
    ticks = process_start_ticks(pid)
    try:
        wait_until(ready.exists, "the job did not start")
        yield StubbornRun(run, pid, ticks)
    finally:
        if process_start_ticks(pid) == ticks:
            os.killpg(pid, signal.SIGKILL)
        if pid in executor._children:  # reaped here when the test failed before a poll did
            executor._children[pid].wait(timeout=5)
