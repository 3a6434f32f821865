"""The rejected-lines file (``rejected.jsonl``): one record per line the daemon will not run
(where it was, why, whose, the id it named) appended as whole lines, readable by every user,
with a private file's line text left out.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

from daemon.queue.files import REJECTED_NAME, QueueError, write_whole_line
from daemon.queue.raw_line import line_object

__all__ = ["rejection_record", "write_rejections"]


def rejection_record(
    rel: str, raw: bytes, line_no: int, offset: int, uid: int | None, now: datetime, reason: str
) -> dict[str, Any]:
    """One ``rejected.jsonl`` record: where the line was, why, whose, the id it named (when it
    can be read: for ``carbond status``) and its first 4,096 bytes."""
    return {
        "file": rel, "line_no": line_no, "offset": offset, "reason": reason, "uid": uid,
        "rejected_at": now.isoformat(), "job_id": _claimed_id(raw),
        "line": raw[:4096].decode("utf-8", errors="replace"),
    }  # fmt: skip


def _claimed_id(raw: bytes) -> str | None:
    """The id (``id``, or a cancel line's ``cancel``) a line names, read as the daemon reads a
    line (:func:`~daemon.queue.raw_line.line_object`: UTF-8 only), at most 64 characters."""
    if len(raw) > 65_536:
        return None
    obj = line_object(raw)
    job_id = obj.get("id", obj.get("cancel")) if obj is not None else None
    return job_id[:64] if isinstance(job_id, str) else None


def write_rejections(
    state_dir: Path, rejections: list[dict[str, Any]], source: os.stat_result | None = None
) -> None:
    """Append ``rejections`` to ``rejected.jsonl`` and fsync, on a fresh line; a write that
    fails part-way (disk full) is cut back off, so the records written again on the retry are
    not glued to a torn one (which would make them unreadable).

    ``rejected.jsonl`` is readable by every user (``carbond jobs --state rejected`` reads each
    user's own records from it), so the text of a line is copied there only from a ``source``
    file every user may read too; a line from a private file (a 0600 spool file) gets
    ``"line": null``, its file, line number, offset and reason kept.

    Raises:
        QueueError: the file cannot be written.
    """
    if not rejections:
        return
    # every user, not readable_by_others: a group-readable file is not for every user
    if source is not None and not source.st_mode & stat.S_IROTH:
        rejections = [{**r, "line": None} for r in rejections]
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejections).encode()
    path = state_dir / REJECTED_NAME
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
        try:
            write_whole_line(fd, data)
        finally:
            os.close(fd)
    except OSError as exc:
        raise QueueError(f"{path}: cannot record rejected lines: {exc}") from exc
