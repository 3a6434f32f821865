"""A job's lines in a queue file that the daemon has not read yet: its job line, and a cancel
line for it after that (``carbond status`` and ``cancel`` of a job still unread)."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from daemon.queue.files import QueueError

__all__ = ["UnreadLines", "has_job_line", "unread_job_lines", "unread_lines"]

UnreadFrom = Callable[[int, os.stat_result], int]


@dataclass(frozen=True, slots=True)
class UnreadLines:
    """What the unread part of a queue file holds for one job id."""

    job: bool  # its job line
    cancel: bool  # a cancel line for it after its job line (the daemon reads both in order)


def has_job_line(path: Path, job_id: str, unread_from: UnreadFrom | None = None) -> bool:
    """Whether the queue file ``path`` holds a job line with ``job_id`` that the daemon has not
    read (:func:`unread_lines`).

    Raises:
        QueueError: the file exists but cannot be read.
    """
    return unread_lines(path, job_id, unread_from).job


def unread_lines(path: Path, job_id: str, unread_from: UnreadFrom | None = None) -> UnreadLines:
    """The lines for ``job_id`` in the queue file ``path`` that the daemon has not read: from
    the offset ``unread_from(fd, stat)`` gives for the open file (the ingest's own rule,
    :func:`daemon.queue.resume.resume`; None: from its start).

    Raises:
        QueueError: the file exists but cannot be read.
    """
    needle = json.dumps(job_id).encode()
    job = False
    for raw in _unread_raw(path, unread_from):
        if needle not in raw:
            continue
        record = _record(raw)
        if record is None:
            continue
        if not job:
            job = record.get("id") == job_id
        elif record == {"cancel": job_id}:
            return UnreadLines(job=True, cancel=True)
    return UnreadLines(job=job, cancel=False)


def unread_job_lines(path: Path, unread_from: UnreadFrom | None = None) -> list[tuple[bytes, bool]]:
    """Every job line with an id in the queue file ``path`` that the daemon has not read
    (:func:`unread_lines`' part of the file), in order, each with whether a cancel line for
    its id follows it there (``carbond jobs`` lists them as submitted).

    Raises:
        QueueError: the file exists but cannot be read.
    """
    found: list[tuple[bytes, bool]] = []
    at: dict[str, int] = {}  # an id's first job line: the one the daemon takes
    for raw in _unread_raw(path, unread_from):
        record = _record(raw)
        if record is None:
            continue
        job_id, cancel = record.get("id"), record.get("cancel")
        if isinstance(job_id, str) and "cancel" not in record and job_id not in at:
            at[job_id] = len(found)
            found.append((raw.rstrip(b"\r\n"), False))
        elif isinstance(cancel, str) and len(record) == 1 and cancel in at:
            found[at[cancel]] = (found[at[cancel]][0], True)
    return found


def _record(raw: bytes) -> dict[str, object] | None:
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def _unread_raw(path: Path, unread_from: UnreadFrom | None) -> Iterator[bytes]:
    """The raw lines of ``path`` from where the daemon goes on reading (none: no such file,
    a symlink or not a regular file, which the daemon never reads).

    Raises:
        QueueError: the file exists but cannot be read.
    """
    try:  # never through a link, never blocking on a FIFO: queue.d is everyone's to swap in
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink: the daemon never reads its lines
            return
        raise QueueError(f"{path}: cannot read: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO, ...: no job line the daemon reads
        os.close(fd)
        return
    with os.fdopen(fd, "rb") as handle:
        if unread_from is not None:
            handle.seek(unread_from(handle.fileno(), os.fstat(handle.fileno())))
        yield from handle
