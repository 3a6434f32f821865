"""The queue files' writer side and shared pieces: names, appending under ``flock``,
attribution of a file's lines to its owner, the rejected-lines file.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import stat
import uuid
from pathlib import Path
from typing import Any

from daemon.errors import DaemonError

__all__ = [
    "QUEUE_NAME",
    "REJECTED_NAME",
    "RETIRED_DIR",
    "SPOOL_DIR",
    "QueueError",
    "append_line",
    "attribution",
    "new_job_id",
    "submit_target",
    "write_rejections",
]

QUEUE_NAME = "queue.jsonl"
SPOOL_DIR = "queue.d"
RETIRED_DIR = "queue.retired"
REJECTED_NAME = "rejected.jsonl"
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


class QueueError(DaemonError):
    """A queue file cannot be written or read (names the file)."""


def new_job_id() -> str:
    """A fresh job id: ``j`` and 12 hex digits."""
    return "j" + uuid.uuid4().hex[:12]


def submit_target(state_dir: Path, uid: int) -> Path:
    """Where ``uid``'s ``carbond submit`` appends: ``queue.jsonl`` when ``uid`` owns it (or
    owns the state dir and it does not exist yet), else ``queue.d/<uid>.jsonl``.

    Raises:
        QueueError: the state dir does not exist.
    """
    main = state_dir / QUEUE_NAME
    if not state_dir.is_dir():
        raise QueueError(
            f"{state_dir}: no such state directory (is the daemon set up? --state-dir)"
        )
    try:
        st = os.stat(main, follow_symlinks=False)
    except FileNotFoundError:
        if state_dir.stat().st_uid == uid:
            return main
    else:
        if st.st_uid == uid and not st.st_mode & _OTHERS_WRITE:
            return main
    return state_dir / SPOOL_DIR / f"{uid}.jsonl"


def append_line(path: Path, record: dict[str, Any], max_line_bytes: int = 65_536) -> None:
    """Append ``record`` as one JSON line to ``path`` under ``flock``, then fsync.

    If compaction renamed the file while we waited for the lock, the line goes to the new file.

    Raises:
        QueueError: the line is too long or the file cannot be written.
    """
    data = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    if len(data) > max_line_bytes:
        raise QueueError(f"{path}: line of {len(data)} bytes exceeds {max_line_bytes}")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(20):
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise QueueError(f"{path}: cannot open the queue for appending: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                continue
            if current != os.fstat(fd).st_ino:
                continue  # compacted while we waited: append to the new file
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            return
        except OSError as exc:
            raise QueueError(f"{path}: cannot append: {exc}") from exc
        finally:
            os.close(fd)
    raise QueueError(f"{path}: the queue file keeps being replaced; try again")


def attribution(rel: str, st: os.stat_result) -> tuple[int, int] | str:
    """The (uid, gid) the lines of ``rel`` run as, or why they cannot be attributed."""
    if st.st_mode & _OTHERS_WRITE:
        return (
            f"{rel} is writable by other users, so its lines cannot be attributed to its "
            "owner; use `carbond submit` or your own queue.d/<uid>.jsonl"
        )
    if st.st_nlink > 1:
        return f"{rel} has {st.st_nlink} hard links, so its owner cannot vouch for its lines"
    if rel.startswith(f"{SPOOL_DIR}/") and rel != f"{SPOOL_DIR}/{st.st_uid}.jsonl":
        return f"{rel} is owned by uid {st.st_uid}; a spool file must be named <owner uid>.jsonl"
    try:
        gid = pwd.getpwuid(st.st_uid).pw_gid
    except KeyError:
        gid = st.st_gid
    return st.st_uid, gid


def write_rejections(state_dir: Path, rejections: list[dict[str, Any]]) -> None:
    """Append ``rejections`` to ``rejected.jsonl`` and fsync.

    Raises:
        QueueError: the file cannot be written.
    """
    if not rejections:
        return
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejections).encode()
    path = state_dir / REJECTED_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise QueueError(f"{path}: cannot record rejected lines: {exc}") from exc
