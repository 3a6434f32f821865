"""``carbond jobs --state rejected``: the queue lines the daemon refused, from ``rejected.jsonl``
(one JSON record per line: file, line number, offset, reason, uid, time, the line itself)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon.errors import UsageError

__all__ = ["REJECTED", "claimed_id", "rejected_lines", "rejected_naming"]

REJECTED = "rejected"  # the pseudo-state `carbond jobs --state` takes for them


def rejected_lines(
    path: Path, uid: int, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """The records of ``path`` written for ``uid``'s lines (uid 0: everyone's), oldest first,
    the first ``offset`` skipped, at most ``limit`` of them (as ``carbond jobs`` pages jobs).
    A missing file has none.

    Raises:
        UsageError: the file exists but cannot be read.
    """
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from exc
    rows = []
    with handle:
        for text in handle:
            try:
                record = json.loads(text)
            except (ValueError, RecursionError):
                continue  # a torn last record: the daemon appends whole lines
            if isinstance(record, dict) and (uid == 0 or record.get("uid") == uid):
                rows.append(record)
    return rows[offset:] if limit is None else rows[offset : offset + limit]


def claimed_id(record: dict[str, Any]) -> str | None:
    """The id the refused line asked for, if it named one."""
    if record.get("job_id"):
        return str(record["job_id"])
    try:  # the line is whatever a user wrote: deep nesting, huge numbers (issue 13)
        line = json.loads(record.get("line") or "")
    except (ValueError, TypeError, RecursionError):
        return None
    value = line.get("id") if isinstance(line, dict) else None
    return value if isinstance(value, str) else None


def rejected_naming(path: Path, job_id: str, uid: int) -> list[dict[str, Any]]:
    """``uid``'s rejected lines (uid 0: anyone's) that named ``job_id``, as ``status`` and
    ``cancel`` show them; none when the file cannot be read."""
    try:
        rows = rejected_lines(path, uid)
    except UsageError:
        return []
    keys = ("file", "line_no", "reason", "rejected_at", "uid")
    return [{k: r.get(k) for k in keys} for r in rows if claimed_id(r) == job_id]
