"""What a ``--jobs`` file looks like, by its first bytes: the format to name when a file read
in another ``--jobs-format`` fails (an Azure CSV read as the default ``carbond`` JSON lines
was "no good row (... not JSON ...)", a ledger.db "not UTF-8 text")."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Final

__all__ = ["looks_like"]

_SQLITE: Final = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database
_AZURE: Final = frozenset({"TIMESTAMP", "ContextTokens", "GeneratedTokens"})
_FIRST_LINE_BYTES: Final = 1 << 20  # a Mooncake line lists its block hashes: long lines
_DESCRIPTIONS: Final = {
    "ledger": "a SQLite database, as a carbond ledger.db is",
    "azure": "an Azure trace's CSV (TIMESTAMP,ContextTokens,GeneratedTokens)",
    "mooncake": "a Mooncake trace (JSON lines with timestamp, input_length)",
    "carbond": "a carbond job file (JSON lines with arrival)",
}


def looks_like(path: Path, read_as: str) -> str | None:
    """The ``--jobs-format`` that ``path`` looks like when it is not ``read_as``, as a hint
    to add to the error the read gave (``it looks like ...: give --jobs-format azure``);
    None when it looks like ``read_as``, like none of them, or cannot be read."""
    kind = _kind(path)
    if kind is None or kind == read_as:
        return None
    return f"it looks like {_DESCRIPTIONS[kind]}: give --jobs-format {kind}"


def _kind(path: Path) -> str | None:
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            first = handle.readline(_FIRST_LINE_BYTES)
    except (OSError, EOFError, ValueError):
        return None
    if first.startswith(_SQLITE):
        return "ledger"
    text = first.decode("utf-8-sig", errors="replace").strip()
    if {cell.strip() for cell in text.split(",")} >= _AZURE:
        return "azure"
    return _json_kind(text)


def _json_kind(line: str) -> str | None:
    """A carbond job file's or a Mooncake trace's first line (a JSON object), else None."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    if "arrival" in obj:
        return "carbond"
    return "mooncake" if {"timestamp", "input_length"} <= obj.keys() else None
