"""Why a queue line is refused: the reason for its owner, and the same without the line's own
text for where other users read it.

A reason names the line's field and the problem, and may quote what the user wrote (an unknown
model's name, a relative ``cwd``). Every reason also has a *public* form that quotes nothing of
the line: the logs and ``rejected.jsonl`` (both readable by other users) get only that for a
line of a file other users cannot read (a 0600 ``queue.d/<uid>.jsonl``).
"""

from __future__ import annotations

import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from daemon.errors import DaemonError
from daemon.queue.files import SPOOL_DIR
from daemon.queue.rejected import rejection_record
from policies.errors import PoliciesError

__all__ = [
    "InvalidLineError",
    "QuotingError",
    "catalog_name",
    "failure_fields",
    "over_limit_record",
    "problems",
    "rejection",
]

log = structlog.get_logger("daemon.queue.ingest")  # its events are ingestion's


class InvalidLineError(DaemonError, ValueError):
    """A queue line that cannot be accepted; the message names the field and the problem.

    ``public``: the same without any of the line's own text (a value it quotes, an unknown
    field's name), for where other users can read it (the logs; ``rejected.jsonl`` for a line
    from a private file): the message itself may quote what the user wrote.
    """

    def __init__(self, message: str, public: str | None = None) -> None:
        super().__init__(message)
        self.public = message if public is None else public


class QuotingError(ValueError):
    """A field validator's problem that quotes the value; ``public`` says it without."""

    def __init__(self, message: str, public: str) -> None:
        super().__init__(message)
        self.public = public


def catalog_name(value: str, lookup: Any) -> Any:
    """``lookup()``; a catalog's "unknown model 'NAME' (known: ...)" becomes a ValueError
    whose public text leaves out the name the user wrote."""
    try:
        return lookup()
    except PoliciesError as exc:
        message = str(exc)
        public = " ".join(message.replace(repr(value), "").split())
        if value in public:
            public = "not a name the catalog knows"
        raise QuotingError(message, public) from exc


def problems(exc: ValidationError) -> InvalidLineError:
    """The line's problems, each naming its field; the public text names neither an unknown
    field (its name is the user's text) nor a value a validator quoted."""
    parts, public = [], []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "<line>"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            parts.append(f"field {where!r}: unknown field")
            public.append("an unknown field (not one of the queue record's)")
            continue
        parts.append(f"field {where!r}: {message}")
        cause = err.get("ctx", {}).get("error")
        said = cause.public if isinstance(cause, QuotingError) else message
        public.append(f"field {where!r}: {said}")
    return InvalidLineError("; ".join(parts), "; ".join(public))


def rejection(
    rel: str,
    raw: bytes,
    line_no: int,
    offset: int,
    owner: tuple[int, int] | str,
    now: datetime,
    reason: str,
    *,
    public: str | None = None,
    private: bool = False,
) -> dict[str, Any]:
    """The record of a refused line. ``public``: ``reason`` without the line's own text (a
    value or field name it quotes). For a line of a ``private`` file (one not every user can
    read), only that goes to the log and to ``rejected.jsonl`` (0644), which never copies
    such a line's text either: other users read both."""
    shown = reason if public is None or not private else public
    log.warning("queue_line_rejected", file=rel, line_no=line_no, reason=shown)
    uid = owner[0] if isinstance(owner, tuple) else None
    return rejection_record(rel, raw, line_no, offset, uid, now, shown)


def failure_fields(exc: BaseException, *, private: bool) -> dict[str, str]:
    """What the log says of a line that failed unexpectedly (a bug, not a refusal): the
    exception's type and where it was raised (``file.py:LINE (function)``), and for a line of a
    file every user can read its message too. The message may quote the line (a value it
    holds), so a ``private`` file's gets the type and place only: other users read the logs."""
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    where = "unknown" if last is None else f"{Path(last.filename).name}:{last.lineno} ({last.name})"
    error = type(exc).__name__ if private else f"{type(exc).__name__}: {str(exc)[:200]}"
    return {"error": error, "where": where}


def over_limit_record(uid: int, unread: int, limit: int, now: datetime) -> dict[str, Any]:
    """The ``rejected.jsonl`` record telling ``uid`` that a pass leaves ``unread`` of their
    spool files unread (:mod:`daemon.queue.spool`); ``carbond jobs --state rejected`` shows it."""
    reason = (
        f"queue.d holds {limit + unread} files of yours, more than queue.max_files_per_user "
        f"({limit}): each pass reads only {limit} of them, those with new lines first, so your "
        "lines are read late (none is lost); remove the files you no longer need"
    )
    return {
        "file": SPOOL_DIR, "line_no": None, "offset": None, "reason": reason, "uid": uid,
        "rejected_at": now.isoformat(), "job_id": None, "line": None,
    }  # fmt: skip
