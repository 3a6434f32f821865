"""A raw queue line's JSON object as the daemon decodes it: UTF-8 only (a line in another
encoding is one it rejects, ``not UTF-8 text``), never the UTF-16/32 or BOM-stripped UTF-8
that ``json.loads`` guesses from bytes. For the ids read from lines the daemon rejects, or
has not read yet: an id it never reads from a line is credited to none."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["line_object"]


def line_object(raw: bytes) -> dict[str, Any] | None:
    """``raw`` (a line, with or without its newline) decoded as UTF-8 and read as JSON, when
    it is a JSON object; None when it is not UTF-8, not JSON (whatever a user wrote: deep
    nesting, huge numbers) or no object."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return record if isinstance(record, dict) else None
