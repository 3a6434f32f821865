"""Signals reach the process that was checked, never a later process given its pid: the
wrapper's stragglers and the local executor's cancel, against real processes."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator

import pytest

from daemon.executors import wrapper


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
