"""Signals reach the process that was checked, never a later process given its pid: the
wrapper's stragglers and the local executor's cancel, against real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.executors import jobfiles, local, wrapper
from daemon.executors.base import ExitStatus, LaunchSpec, RunHandle
from daemon.executors.jobfiles import process_start_ticks
from daemon.executors.local import LocalExecutor

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _gone(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> bool:
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False
    return True


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes the test starts, killed after it whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


def test_the_wrapper_does_not_signal_a_pid_that_left_its_session_after_the_scan(
    sleepers: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wrapper listed its session's processes, then signalled each pid: one that had
    ended meanwhile, its pid given to another process (another user's: the wrapper runs as
    root), was SIGTERMed and SIGKILLed. Each pid is now checked once a pidfd on it is open:
    still in the session, it is signalled through that pidfd; no longer, it is left alone."""
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)  # the pid's new owner
    ours = subprocess.Popen(["sleep", "300"])  # in this session, as a straggler is
    sleepers += [stranger, ours]
    scans = iter([[stranger.pid, ours.pid]])  # the first scan saw both as the session's
    monkeypatch.setattr(wrapper, "_session_members", lambda: next(scans, []))

    assert wrapper._end_stragglers() == 2

    assert _gone(ours), "the straggler in the session was not ended"
    time.sleep(0.2)
    assert stranger.poll() is None, "a process outside the session was signalled"


def test_a_cancel_does_not_signal_a_group_whose_leaders_pid_went_to_another_process(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cancel`` checked that the wrapper still ran (its pid and start tick), then sent
    ``killpg(pid)``: had the job ended in between and its pid gone to another process that
    leads a group of its own, that group got the SIGTERM (and, from ``poll``, the SIGKILL).
    The group is now signalled through a pidfd opened before the check that its leader is
    the wrapper, here when the check sees the later process."""
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)  # leads its group
    sleepers.append(stranger)
    real = process_start_ticks(stranger.pid)
    assert real is not None
    wrapper_ticks = real - 1  # the wrapper that had this pid started earlier
    token = {"pid": stranger.pid, "start_ticks": wrapper_ticks,
             "status_file": str(tmp_path / "j.status.json")}  # fmt: skip
    handle = RunHandle("j", "local", json.dumps(token), NOW)
    real_ticks, checked = jobfiles.process_start_ticks, []

    def ticks(pid: int) -> int | None:
        if pid == stranger.pid and not checked:  # cancel's check: the wrapper, still there
            checked.append(pid)
            return wrapper_ticks
        return real_ticks(pid)  # then the job ends, and its pid goes to the stranger

    monkeypatch.setattr(jobfiles, "process_start_ticks", ticks)
    executor = LocalExecutor()  # a restarted daemon: the wrapper is not its child

    executor.cancel(handle, NOW)

    time.sleep(0.2)
    assert stranger.poll() is None, "another process's group got the cancel's SIGTERM"


def test_a_wrapper_killed_alone_holds_its_pid_until_its_session_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its wrapper killed alone (the OOM killer), a job's session was killed by the
    wrapper's pid after the wrapper had been reaped: once the session's last process ended,
    that pid was free for another process, whose session would be killed instead. The
    wrapper is now reaped only after: a zombie, it holds its pid while the session is
    killed."""
    pid_file = tmp_path / "job.pid"
    code = (
        "import os, pathlib, time; tmp = pathlib.Path("
        f"{str(pid_file)!r} + '.tmp'); tmp.write_text(str(os.getpid()));"
        f" tmp.rename({str(pid_file)!r}); time.sleep(60)"
    )
    spec = LaunchSpec("job-oom", (sys.executable, "-c", code), uid=os.geteuid(),
                      gid=os.getegid(), gpu_indices=(0,), log_dir=tmp_path / "logs")  # fmt: skip
    executor = LocalExecutor()
    handle = executor.launch(spec, NOW)
    wrapper_pid = json.loads(handle.token)["pid"]
    end = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < end:
        time.sleep(0.02)
    job = int(pid_file.read_text())
    held: list[bool] = []
    kill_session = local._kill_session

    def spy(pid: int, *rest: Callable[[int], bool]) -> None:
        held.append(Path(f"/proc/{pid}").exists())  # the zombie wrapper, not reaped yet
        kill_session(pid, *rest)

    monkeypatch.setattr(local, "_kill_session", spy)
    try:
        os.kill(wrapper_pid, signal.SIGKILL)  # the wrapper only
        ended: list[ExitStatus] = []
        while not ended and time.monotonic() < end:
            ended = executor.poll([handle], NOW)
            time.sleep(0.02)
        assert ended and "without recording a status" in ended[0].reason
        assert held == [True], "the wrapper's pid was free while its session was killed"
        assert not Path(f"/proc/{wrapper_pid}").exists() or (
            process_start_ticks(wrapper_pid) is not None  # reused since: not our zombie
        ), "the wrapper was never reaped"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(job, signal.SIGKILL)
