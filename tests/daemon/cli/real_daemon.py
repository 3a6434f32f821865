"""One real ``carbond run`` process for the tests that drive it (``test_run_*.py``): its
config, a notify socket read as systemd reads it, and waits on conditions."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from daemon.ledger import Ledger

CONFIG = """
state_dir = "{state}"
[policy]
name = "run-now"
[intervals]
ingest_s = 0.1
plan_s = 0.2
reconcile_s = 0.1
[metrics]
port = {port}
[executors.local]
grace_s = 2
[[regions]]
name = "qc"
zone = "CA-QC"
executor = "local"
gpus = ["T4", "T4"]
"""


# Ports for the daemons' metrics endpoints. ``bind(0)`` and close handed out a port the
# kernel then gave again to anyone (another xdist worker's free_port(), any outgoing
# connection) before the daemon bound it. These are below the kernel's ephemeral range, which
# no bind(0) or connect takes, and each is reserved by an flock on its own file in the temp
# dir, held for the life of the process that got it: no other worker, nor another checkout's
# suite, gets it while this one's daemons may still bind it. The holder removes the file at
# exit, still holding the lock (until 2026-12-07 the files stayed in /tmp for good); a lock
# counts only where the path still names the file locked (:func:`locked_where_linked`), so
# one taken on a file just removed is refused: see :func:`_reserve`.
_PORTS = range(24_000, 25_000)
_PORT_LOCK = os.path.join(tempfile.gettempdir(), "carbond-tests-port-{port}.lock")
_reserved: list[tuple[str, int]] = []  # the lock files and their descriptors, held till exit
_OWNER_PID = os.getpid()  # the process whose exit releases them


def _ephemeral_ports() -> range:
    """The kernel's range for ``bind(0)`` and outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
            low, high = map(int, handle.read().split())
    except (OSError, ValueError):
        return range(32_768, 61_000)  # Linux's default
    return range(low, high + 1)


def free_port() -> int:
    """A port on 127.0.0.1 for a daemon to bind, free now, outside the kernel's ephemeral
    range and reserved for this process: no other caller of ``free_port()``, in this process
    or another, gets it (:data:`_PORTS`).

    Raises:
        AssertionError: every port of :data:`_PORTS` is reserved, held or ephemeral.
    """
    ephemeral = _ephemeral_ports()
    for port in _PORTS:
        if port in ephemeral:
            continue
        path = _PORT_LOCK.format(port=port)
        fd = _reserve(path)
        if fd is None:
            continue
        if _bindable(port):
            _reserved.append((path, fd))
            return port
        _release(path, fd)
    raise AssertionError(f"no free port in {_PORTS} outside the ephemeral ports {ephemeral}")


def _reserve(path: str) -> int | None:
    """``path`` open and flocked by this process, or None where another holds it.

    Race-free with :func:`_release`: a holder removes its file only while holding the lock.
    A process that opened the file before that removal gets the lock only once the holder has
    closed it, on a file no longer linked; a third may meanwhile have made ``path`` anew and
    locked that. Both would think the port theirs, so a lock counts only where ``path`` still
    names the file locked: of all the files ever at ``path``, only the linked one's lock
    holds, and only its holder can unlink it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:  # another user's lock file we may not open: theirs
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # reserved by another process, or by this one already
        os.close(fd)
        return None
    if not locked_where_linked(fd, path):  # removed by its last holder after we opened it
        os.close(fd)
        return None
    return fd


def _release(path: str, fd: int) -> None:
    """Remove ``path``, then let go of its lock (the order :func:`_reserve` relies on)."""
    with contextlib.suppress(OSError):  # gone already, or another user's in a sticky dir
        os.unlink(path)
    os.close(fd)


@atexit.register
def _release_all() -> None:
    """At the exit of the process that reserved the ports (not a forked child's that
    returns normally: it shares the locks, and would remove its parent's files)."""
    while _reserved and os.getpid() == _OWNER_PID:
        _release(*_reserved.pop())


def locked_where_linked(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not removed, nor made anew)."""
    try:
        linked = os.stat(path)
    except OSError:
        return False
    opened = os.fstat(fd)
    return (linked.st_dev, linked.st_ino) == (opened.st_dev, opened.st_ino)


def _bindable(port: int) -> bool:
    """Whether the metrics endpoint could bind ``port`` now (its server sets SO_REUSEADDR: a
    port in TIME_WAIT is free)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# A real daemon on a loaded 2-core runner, with a cold numba cache, took over 30 s to be ready
# and over 60 s to warm a policy: every wait is on its condition, with a deadline only a hang
# reaches (a healthy run returns as soon as the condition holds).
DEADLINE_S = 300.0


def until(what: str, check: Callable[[], bool], timeout_s: float = DEADLINE_S) -> None:
    end = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Daemon:
    """One ``carbond run`` process with a fake systemd notify socket, read as systemd does.

    The socket is drained by a thread from the start: unread, its queue (10 datagrams) filled
    with the ``WATCHDOG=1`` pings (every 0.5 s) while a test waited on something else, and the
    daemon's next ``sd_notify`` blocked its main loop (a slow warm-up under load hung it).
    """

    def __init__(self, tmp_path: Path, config: Path) -> None:
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path = tmp_path / f"notify-{time.monotonic_ns()}"
        self.notify.bind(str(path))
        self.notify.settimeout(0.1)  # how soon the reader sees close()
        self._messages: queue.Queue[str] = queue.Queue()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, name="notify-reader", daemon=True)
        self._reader.start()
        env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"}
        self.log = (tmp_path / "daemon.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(config)],
            env=env,
            stdout=self.log,
            stderr=self.log,
        )

    def _read(self) -> None:
        while not self._closing.is_set():
            try:
                self._messages.put(self.notify.recv(4096).decode())
            except TimeoutError:
                continue

    def expect(self, message: str, timeout_s: float = DEADLINE_S) -> None:
        """Wait for the daemon to notify ``message`` (one deadline for all, not per datagram)."""
        end = time.monotonic() + timeout_s
        while True:
            left_s = end - time.monotonic()
            if left_s <= 0:
                raise AssertionError(f"timed out waiting for {message} from the daemon")
            try:
                got = self._messages.get(timeout=left_s)
            except queue.Empty:
                continue  # the deadline check above says so
            if got.startswith(message):
                return

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._closing.set()
        self._reader.join()
        self.notify.close()
        self.log.close()


def submit(state: Path, job_id: str, argv: list[str]) -> None:
    line = {"id": job_id, "model": "llama-1b", "requests": 1, "command": argv}
    with (state / "queue.jsonl").open("a") as queue:
        queue.write(json.dumps(line) + "\n")


def state_of(state: Path, job_id: str) -> str | None:
    try:
        with Ledger.open_readonly(state / "ledger.db") as ledger:
            return ledger.job(job_id).state
    except Exception:  # not ingested yet (or the ledger is being created)
        return None
