"""A job's lines in a queue file that the daemon has not read yet: its job line, and a cancel
line for it after that (``carbond status`` and ``cancel`` of a job still unread)."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from daemon.queue.files import QueueError

__all__ = ["UnreadLines", "has_job_line", "unread_lines"]

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
    none = UnreadLines(job=False, cancel=False)
    try:  # never through a link, never blocking on a FIFO: queue.d is everyone's to swap in
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return none
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink: the daemon never reads its lines
            return none
        raise QueueError(f"{path}: cannot read: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO, ...: no job line the daemon reads
        os.close(fd)
        return none
    job = False
    with os.fdopen(fd, "rb") as handle:
        if unread_from is not None:
            handle.seek(unread_from(handle.fileno(), os.fstat(handle.fileno())))
        for raw in handle:
            if needle not in raw:
                continue
            try:
                record = json.loads(raw)
            except (ValueError, RecursionError):
                continue
            if not isinstance(record, dict):
                continue
            if not job:
                job = record.get("id") == job_id
            elif record == {"cancel": job_id}:
                return UnreadLines(job=True, cancel=True)
    return UnreadLines(job=job, cancel=False)
