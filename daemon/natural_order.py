"""Names in natural order: the runs of digits in them compare as numbers (``r2`` before
``r10``), the rest as text, as people number jobs, users and nodes.

:func:`natural_key` is one bytes key for Python's ``sorted`` and for SQLite's ``ORDER BY``
(registered on a connection by :func:`register`, compared byte by byte there as here), so a
report read in job id order by the ledger lists its jobs as one sorted in memory would."""

from __future__ import annotations

import re
import sqlite3

__all__ = ["SQL_FUNCTION", "natural_key", "register"]

SQL_FUNCTION = "carbond_natural_key"

_RUNS = re.compile(r"(\d+)", re.ASCII)


def natural_key(name: str) -> bytes:
    """A key that orders ``name`` naturally: each run of ASCII digits becomes ``0``, its
    length without leading zeros (four bytes) and those digits, so a longer number sorts
    after a shorter one and numbers still sort where a digit would among text (after ``-``
    and ``.``, before letters); the rest is its UTF-8 bytes (code point order). Names equal
    but for leading zeros (``r01``, ``r1``) get one key: sort by the name after it."""
    out = bytearray()
    for i, part in enumerate(_RUNS.split(name)):
        if i % 2:  # a run of digits
            digits = part.lstrip("0") or "0"
            out += b"0" + len(digits).to_bytes(4, "big") + digits.encode("ascii")
        else:
            out += part.encode("utf-8", "surrogatepass")
    return bytes(out)


def register(db: sqlite3.Connection) -> None:
    """Make :func:`natural_key` SQL's ``carbond_natural_key(text)`` on ``db`` (NULL for a
    NULL, other values by their text)."""
    db.create_function(
        SQL_FUNCTION, 1, lambda v: None if v is None else natural_key(str(v)), deterministic=True
    )
