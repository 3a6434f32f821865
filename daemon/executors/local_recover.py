"""A local run as a restarted daemon finds it: its run token, and the run whose token was
never recorded (:func:`recover`).

The run token is ``{"pid", "start_ticks", "status_file"}``: the wrapper's pid with its start
time in clock ticks since boot (``/proc/PID/stat`` field 22), so a re-used pid is never
mistaken for the job after a restart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from daemon.executors import jobfiles
from daemon.executors.base import ExitStatus, NotStarted, RunHandle
from daemon.executors.errors import ExecutorError

__all__ = ["SAFE_ID", "Token", "recover"]

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Token:
    pid: int
    start_ticks: int
    status_file: Path

    def encode(self) -> str:
        return json.dumps(
            {"pid": self.pid, "start_ticks": self.start_ticks, "status_file": str(self.status_file)}
        )

    @classmethod
    def decode(cls, handle: RunHandle) -> Token:
        try:
            raw = json.loads(handle.token)
            return cls(int(raw["pid"]), int(raw["start_ticks"]), Path(raw["status_file"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ExecutorError(f"job {handle.job_id}: unreadable local run token") from exc


def recover(
    log_dir: Path | None, executor: str, handle: RunHandle, now: datetime
) -> RunHandle | ExitStatus:
    """Find a run whose token was never recorded, race-free against a starting wrapper
    (``log_dir``: where its files are; ``executor``: the name its handle gets).

    The wrapper claims ``<id>.started.<attempt>`` (``O_EXCL``) before it starts the job;
    here the same claim is tried first. If it succeeds, the job never started and now
    never will (a late wrapper finds the claim taken and exits): :func:`_never_started`.
    If the wrapper holds the claim, the job started: it is found in ``/proc`` or its
    status is read.
    """
    if log_dir is None or not SAFE_ID.fullmatch(handle.job_id):
        return ExitStatus(handle.job_id, now, None, None, "run token lost; no log_dir to look")
    status = log_dir / f"{handle.job_id}.status.json"
    spec_file = log_dir / f"{handle.job_id}.spec.json"
    if (recorded := jobfiles.read_status(handle.job_id, status, now)) is not None:
        return recorded
    marker = jobfiles.start_marker(spec_file)
    if marker is None:
        return _never_started(handle, now, "the daemon stopped before writing its spec")
    if jobfiles.claim(marker):
        return _never_started(handle, now, "the daemon stopped before its wrapper started it")
    return _started(executor, handle, spec_file, status, now)


def _started(
    executor: str, handle: RunHandle, spec_file: Path, status: Path, now: datetime
) -> RunHandle | ExitStatus:
    """The wrapper claimed the start: the job runs (found in ``/proc``) or has ended."""
    if (pid := jobfiles.find_wrapper(spec_file)) is not None:
        ticks = jobfiles.process_start_ticks(pid)
        if ticks is not None:
            token = Token(pid, ticks, status).encode()
            return RunHandle(handle.job_id, executor, token, handle.started_at)
    if (recorded := jobfiles.read_status(handle.job_id, status, now)) is not None:
        return recorded
    reason = "started, but its wrapper ended without recording a status"
    return ExitStatus(handle.job_id, now, None, None, reason)


def _never_started(handle: RunHandle, now: datetime, why: str) -> ExitStatus:
    """A run that provably never started (the service queues the job again)."""
    return NotStarted(handle.job_id, now, None, None, f"never started: {why}")
