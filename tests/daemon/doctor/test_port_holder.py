"""``carbond doctor``'s ``metrics`` line names the process holding the port: the
``metrics_unavailable`` event says "carbond doctor says what holds the port", but doctor said
only "another program holds it", so the operator was sent to a check that could not tell."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.daemon.doctor.doctor_setup import healthy_setup, run_doctor

_HOLDER = """
import os, socket, sys
uid = int(sys.argv[1])
with open("/proc/self/comm", "w") as comm:  # before setuid: then /proc/self is root's
    comm.write("port-squatter")
if uid >= 0:
    os.setuid(uid)  # another user's process
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
if sys.argv[2] == "listen":
    sock.listen()
print(sock.getsockname()[1], flush=True)
sys.stdin.read()  # held until the test closes stdin
"""


@contextmanager
def _held_port(uid: int = -1, *, listen: bool = True) -> Iterator[tuple[int, int]]:
    """A child process holding a port on 127.0.0.1, listening or only bound: ``(port, pid)``."""
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(uid), "listen" if listen else "bind"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as child:  # fmt: skip
        assert child.stdin is not None and child.stdout is not None
        try:
            yield int(child.stdout.readline()), child.pid
        finally:
            child.stdin.close()
            child.wait(timeout=10)


def _metrics_line(tmp_path: Path, port: int) -> str:
    _, config = healthy_setup(tmp_path)
    config.write_text(f"{config.read_text()}[metrics]\nport = {port}\n")
    code, checks = run_doctor(config)
    assert code == 1
    return checks["metrics"]


def test_doctor_names_the_process_holding_the_metrics_port(tmp_path: Path) -> None:
    with _held_port() as (port, pid):
        detail = _metrics_line(tmp_path, port)
    assert detail.startswith(f"fail: 127.0.0.1:{port}: cannot listen (")
    assert f"pid {pid} (port-squatter, " in detail and "holds it" in detail, detail
    assert "run without /metrics" in detail  # what the daemon does about it, as before


@pytest.mark.skipif(os.geteuid() != 0, reason="root alone sees another user's fds")
def test_doctor_as_root_names_another_users_process_and_its_user(tmp_path: Path) -> None:
    with _held_port(uid=65534) as (port, pid):
        detail = _metrics_line(tmp_path, port)
    assert f"pid {pid} (port-squatter, " in detail and "uid 65534)" in detail, detail


def _kernel() -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", os.uname().release)[:2])


@pytest.mark.skipif(_kernel() < (6, 9), reason="Linux dumps bound-only sockets from 6.9 on")
def test_doctor_names_the_process_of_a_socket_bound_but_not_listening(tmp_path: Path) -> None:
    """A socket bound to the port without ``listen()`` keeps the daemon from binding it just
    the same, but no ``/proc/net/tcp`` line shows it: doctor said "another program holds it".
    The kernel's dump of bound-only sockets (netlink ``sock_diag``) names it now."""
    with _held_port(listen=False) as (port, pid):
        detail = _metrics_line(tmp_path, port)
    assert detail.startswith(f"fail: 127.0.0.1:{port}: cannot listen (")
    assert f"pid {pid} (port-squatter, " in detail and "holds it" in detail, detail
