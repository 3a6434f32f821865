"""The metrics ports the real-daemon tests (``test_run_*.py``) give their daemons: the suite
runs on several pytest-xdist workers, each starting daemons of its own."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon.cli.real_daemon import free_port, locked_where_linked

REPO_ROOT = Path(__file__).resolve().parents[3]
EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def test_a_port_given_to_one_worker_is_given_to_no_other_and_no_bind_0() -> None:
    """``free_port()`` bound port 0 and closed it: the kernel could give the same port to
    another worker's ``free_port()`` (or to any connection) before this worker's daemon bound
    it, and one of the two daemons ran without ``/metrics`` (or a test scraped the other's).
    Now a port is outside the ephemeral range and reserved for the process that got it."""
    if not EPHEMERAL.exists():
        pytest.skip(f"no {EPHEMERAL}: not Linux")
    low, high = map(int, EPHEMERAL.read_text().split())
    port = free_port()
    assert not low <= port <= high

    other_worker = subprocess.run(
        [sys.executable, "-c", "from tests.daemon.cli.real_daemon import free_port; "
         "print([free_port() for _ in range(20)])"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    theirs = json.loads(other_worker.stdout)
    assert port not in theirs and len(set(theirs)) == len(theirs)
    assert free_port() != port  # nor again in this process

    with socket.socket() as daemon:  # still free for this worker's daemon to bind
        daemon.bind(("127.0.0.1", port))


def test_a_process_leaves_no_lock_file_behind(tmp_path: Path) -> None:
    """Until 2026-12-07 every port reserved left ``carbond-tests-port-PORT.lock`` in the temp
    dir for good; its holder now removes it when it exits (under the lock: see the next test).
    A temp dir of its own, so that no other suite's workers make or take files there."""
    script = ("import os; from tests.daemon.cli.real_daemon import free_port, locked_where_linked; "
              "ports = [free_port() for _ in range(3)]; "
              f"print(ports, sorted(os.listdir({str(tmp_path)!r})))")  # fmt: skip
    child = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
        check=True, timeout=60, env={**os.environ, "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    ports, held = child.stdout.rsplit("] [", 1)
    assert held.count(".lock") == 3  # there while held
    assert list(tmp_path.glob("carbond-tests-port-*.lock")) == [], ports


def test_a_lock_taken_on_a_removed_file_is_refused(tmp_path: Path) -> None:
    """A process that opened a lock file just before its holder removed it and let go gets
    the lock on the removed file: it must not count (a third process, making the file anew,
    would take the same port), so the lock is held only where the path still names it."""
    path = tmp_path / "port.lock"
    path.touch()
    stale = os.open(path, os.O_RDONLY)
    try:
        assert locked_where_linked(stale, str(path))
        path.unlink()  # the holder's release
        assert not locked_where_linked(stale, str(path))
        path.touch()  # made anew by another process
        assert not locked_where_linked(stale, str(path))
    finally:
        os.close(stale)
