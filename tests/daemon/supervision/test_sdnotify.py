"""The notify protocol against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.supervision.sdnotify import Notifier


@pytest.fixture
def fake_systemd(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


def _received(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n"))


def test_ready_status_watchdog_stopping_reach_the_socket(
    fake_systemd: tuple[socket.socket, str],
) -> None:
    sock, path = fake_systemd
    with Notifier({"NOTIFY_SOCKET": path}) as notifier:
        assert notifier.ready("3 jobs queued")
        assert _received(sock) == {"READY": "1", "STATUS": "3 jobs queued"}
        assert notifier.watchdog()
        assert _received(sock) == {"WATCHDOG": "1"}
        assert notifier.status("two\nlines")
        assert _received(sock) == {"STATUS": "two lines"}
        assert notifier.reloading()
        assert _received(sock) == {"RELOADING": "1"}
        assert notifier.stopping()
        assert _received(sock) == {"STOPPING": "1"}


def test_abstract_socket_names_start_with_at() -> None:
    name = f"carbond-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    try:
        with Notifier({"NOTIFY_SOCKET": f"@{name}"}) as notifier:
            assert notifier.ready()
        assert _received(sock) == {"READY": "1"}
    finally:
        sock.close()


@pytest.mark.parametrize("env", [{}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "vsock:2:1"}])
def test_without_systemd_every_call_is_a_no_op(env: dict[str, str]) -> None:
    notifier = Notifier(env)
    assert not notifier.enabled
    assert not notifier.ready() and not notifier.watchdog() and not notifier.stopping()


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.enabled
    assert not notifier.ready()
    notifier.close()


def test_a_socket_nobody_reads_fails_a_send_after_a_timeout_not_forever(
    fake_systemd: tuple[socket.socket, str],
) -> None:
    """Its queue full, every send blocked for good: the watchdog thread, holding the loop's
    lock, hung and the main thread with it (a test daemon whose notify socket was not read
    ignored two SIGTERMs for 40 s, until SIGKILL)."""
    _, path = fake_systemd  # never read
    notifier = Notifier({"NOTIFY_SOCKET": path})
    took: list[float] = []

    def ping_until_one_fails() -> None:
        for _ in range(1000):  # Linux queues 10 datagrams by default (max_dgram_qlen)
            started = time.monotonic()
            if not notifier.watchdog():
                took.append(time.monotonic() - started)
                return

    pinger = threading.Thread(target=ping_until_one_fails, daemon=True)
    pinger.start()
    pinger.join(timeout=15)
    assert not pinger.is_alive(), "a send to a full socket blocks"
    assert took and took[0] < 3  # SEND_TIMEOUT_S, 1 s
    notifier.close()


@pytest.mark.parametrize(
    ("env", "interval_s"),
    [
        ({"WATCHDOG_USEC": "20000000"}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, None),  # meant for another pid
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    env: dict[str, str], interval_s: float | None
) -> None:
    assert Notifier(env).watchdog_interval_s() == interval_s
