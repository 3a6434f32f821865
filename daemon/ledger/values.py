"""How values are stored in the ledger's columns: times as RFC 3339 text, lists as JSON."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

from daemon.isotime import isoformat

__all__ = ["dt", "json_tuple", "req_dt", "ts"]


def ts(value: datetime | None) -> str | None:
    """A datetime as stored (RFC 3339 text)."""
    if value is None:
        return None
    last = _last_ts[0]
    if value is last[0]:  # the same object: a round writes its ``now`` many times
        return last[1]
    text = isoformat(value)
    _last_ts[0] = (value, text)  # one reference swapped: safe across threads
    return text


# The last datetime ts() formatted (compared by identity: equal instants in two time zones
# are two texts), with its text.
_last_ts: list[tuple[datetime | None, str]] = [(None, "")]


def dt(value: str | None) -> datetime | None:
    """A stored time back as a datetime (None stays None)."""
    return None if value is None else datetime.fromisoformat(value)


def req_dt(value: str) -> datetime:
    """A stored, required time back as a datetime."""
    return datetime.fromisoformat(value)


@functools.lru_cache(maxsize=4096)
def json_tuple(text: str) -> tuple[Any, ...]:
    """A stored JSON list as a tuple (device ids and GPU indices repeat across runs and
    decisions: parsed once each)."""
    return tuple(json.loads(text))
