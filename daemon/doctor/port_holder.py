"""Which process holds a TCP port on 127.0.0.1 (``carbond doctor``'s ``metrics`` line names it,
as the ``metrics_unavailable`` log event promises).

Linux only, read from ``/proc``: the sockets bound to the port (``/proc/net/tcp`` and ``tcp6``,
on 127.0.0.1 or a wildcard address, which also keeps 127.0.0.1 from being bound) give their
owner's uid and inode; the process whose ``/proc/PID/fd`` links to ``socket:[INODE]`` holds
it. Another user's fds are readable by root alone: for anyone else, the socket's uid is what
can be said. A socket bound but neither listening nor connected is in no ``/proc/net`` table:
the kernel's ``sock_diag`` netlink dump of bound-only sockets (Linux 6.9 on) names it.
"""

from __future__ import annotations

import os
import pwd
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PortHolder", "describe_holder", "port_holder"]

_PROC = Path("/proc")
_LOOPBACK = ("127.0.0.1", "0.0.0.0", "::", "::ffff:127.0.0.1", "::ffff:0.0.0.0")


@dataclass(frozen=True, slots=True)
class PortHolder:
    """The socket bound to the port: its owner's uid, and the process with it open (None:
    not visible to this user, or gone since)."""

    uid: int
    pid: int | None
    comm: str | None


def port_holder(port: int, proc: Path = _PROC) -> PortHolder | None:
    """The holder of TCP ``port`` on 127.0.0.1 (None: no such socket found, or ``/proc``
    cannot be read)."""
    sockets = _bound_sockets(port, proc)
    if not sockets:
        return None
    for inode, uid in sockets:
        found = _process_of(inode, proc)
        if found is not None:
            return PortHolder(uid, *found)
    return PortHolder(sockets[0][1], None, None)


def describe_holder(holder: PortHolder | None) -> str:
    """``holder`` as doctor says it: ``pid 4242 (nginx, uid 1001) holds it``."""
    if holder is None:
        return "another program holds it"
    who = _user(holder.uid)
    if holder.pid is None:
        return (f"a process of {who} holds it (which one: run `carbond doctor` as root, or "
                "`ss -ltnp`)")  # fmt: skip
    return f"pid {holder.pid} ({holder.comm or '?'}, {who}) holds it"


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _bound_sockets(port: int, proc: Path) -> list[tuple[int, int]]:
    """``(inode, uid)`` of each socket bound to ``port`` where it keeps 127.0.0.1 from being
    bound; listening ones first."""
    found: list[tuple[bool, int, int]] = []
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            lines = (proc / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            address, _, port_hex = fields[1].partition(":")
            try:
                if int(port_hex, 16) != port or _address(address, family) not in _LOOPBACK:
                    continue
                found.append((fields[3] != "0A", int(fields[9]), int(fields[7])))
            except ValueError:
                continue
    bound = [(inode, uid) for _, inode, uid in sorted(found) if inode]
    return bound + [s for s in _bound_only_sockets(port) if s not in bound]


_NETLINK_SOCK_DIAG = 4  # linux/netlink.h
_SOCK_DIAG_BY_FAMILY = 20  # linux/sock_diag.h
_NLM_F_DUMP_REQUEST = 0x301  # NLM_F_REQUEST | NLM_F_DUMP
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_BOUND_INACTIVE = 13  # the state inet_diag dumps bound-only sockets under (Linux 6.9)
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_REQUEST = struct.Struct("=BBBxI48x")  # inet_diag_req_v2: family, protocol, ext, states, id
# inet_diag_msg: family, state, timer, retrans; id: sport (big-endian), dport, src, dst,
# interface, cookie; expires, rqueue, wqueue, uid, inode
_MESSAGE = struct.Struct("=4x2s2x16s16x4x8x12xII")


def _bound_only_sockets(port: int) -> list[tuple[int, int]]:
    """``(inode, uid)`` of each TCP socket bound to ``port`` on 127.0.0.1 or a wildcard
    address but neither listening nor connected (none where the kernel cannot say: before
    Linux 6.9, or without netlink)."""
    found = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for sport, address, uid, inode in _dump_bound_only(family):
            if sport == port and inode and _diag_address(address, family) in _LOOPBACK:
                found.append((inode, uid))
    return found


def _dump_bound_only(family: int) -> list[tuple[int, bytes, int, int]]:
    """The kernel's bound-only TCP sockets of ``family``: ``(port, address, uid, inode)``."""
    request = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 1 << _TCP_BOUND_INACTIVE)
    header = _HEADER.pack(_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY,
                          _NLM_F_DUMP_REQUEST, 1, 0)  # fmt: skip
    found: list[tuple[int, bytes, int, int]] = []
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
            nl.settimeout(2.0)
            nl.sendto(header + request, (0, 0))
            while True:
                data, at = nl.recv(1 << 16), 0
                if not data:
                    return found
                while at + _HEADER.size <= len(data):
                    length, kind = _HEADER.unpack_from(data, at)[:2]
                    if kind in (_NLMSG_DONE, _NLMSG_ERROR) or length < _HEADER.size:
                        return found
                    if length >= _HEADER.size + _MESSAGE.size:
                        sport, address, uid, inode = _MESSAGE.unpack_from(data, at + _HEADER.size)
                        found.append((int.from_bytes(sport, "big"), address, uid, inode))
                    at += (length + 3) & ~3
    except OSError:  # no netlink here (a sandbox), or it timed out: what was found
        return found


def _diag_address(raw: bytes, family: int) -> str:
    """inet_diag's address: network byte order, IPv4 in the first 4 of 16 bytes."""
    return socket.inet_ntop(family, raw[:4] if family == socket.AF_INET else raw)


def _address(text: str, family: int) -> str:
    """``/proc/net/tcp``'s address: 32-bit words printed in hex as host-order integers."""
    words = [int(text[i : i + 8], 16) for i in range(0, len(text), 8)]
    return socket.inet_ntop(family, struct.pack(f"={len(words)}I", *words))


def _process_of(inode: int, proc: Path) -> tuple[int, str | None] | None:
    """The first process (lowest pid) with ``socket:[inode]`` among its fds, and its name."""
    target = f"socket:[{inode}]"
    pids = sorted(int(p.name) for p in proc.iterdir() if p.name.isdigit())
    for pid in pids:
        try:
            fds = os.listdir(proc / str(pid) / "fd")
        except OSError:
            continue  # another user's (not root), or gone
        for fd in fds:
            try:
                if os.readlink(proc / str(pid) / "fd" / fd) == target:
                    return pid, _comm(proc / str(pid))
            except OSError:
                continue
    return None


def _comm(pid_dir: Path) -> str | None:
    try:
        return (pid_dir / "comm").read_text().strip() or None
    except OSError:
        return None
