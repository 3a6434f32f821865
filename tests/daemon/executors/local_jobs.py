"""Helpers for tests that run real jobs through the local executor: a job's launch spec, waiting
for its end, for a pid file, for a process to be gone, and a monotonic clock advanced by hand."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from daemon.executors.base import ExitStatus, LaunchSpec, RunHandle
from daemon.executors.jobfiles import process_start_ticks
from daemon.executors.local import LocalExecutor

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FakeMonotonic:
    """A monotonic clock the test advances by hand (``t``, from 1000.0 s)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def job_spec(tmp_path: Path, job_id: str, *argv: str, **kw: object) -> LaunchSpec:
    args: dict[str, object] = {
        "uid": os.geteuid(),
        "gid": os.getegid(),
        "gpu_indices": (0,),
        "log_dir": tmp_path / "logs",
    }
    args.update(kw)
    return LaunchSpec(job_id, tuple(argv), **args)  # type: ignore[arg-type]


def wait_ended(executor: LocalExecutor, handle: RunHandle, timeout_s: float = 30.0) -> ExitStatus:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        done = executor.poll([handle], NOW)
        if done:
            return done[0]
        time.sleep(0.02)
    raise AssertionError(f"job {handle.job_id} did not end within {timeout_s} s")


def read_pid(path: Path, timeout_s: float = 30.0) -> int:
    end = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.02)
    return int(path.read_text())


def gone(pid: int, ticks: int | None, timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while process_start_ticks(pid) == ticks:
        if time.monotonic() > end:
            os.kill(pid, signal.SIGKILL)  # not left behind by a failing test
            return False
        time.sleep(0.02)
    return True
