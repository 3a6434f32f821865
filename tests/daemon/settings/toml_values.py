"""TOML text for the values the settings fuzz tests draw (shared by test_fuzz.py and
test_fuzz_tables.py)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

__all__ = ["toml_value"]


def toml_value(value: Any) -> str:
    """``value`` as a TOML value: floats' nan/inf spelled as TOML does, strings quoted with
    every unprintable character escaped (:func:`_escaped`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + "".join(c if c.isprintable() and c not in '"\\' else _escaped(c)
                         for c in str(value)) + '"'  # fmt: skip


def _escaped(c: str) -> str:
    """``c`` as a TOML escape: ``\\uXXXX``, or ``\\UXXXXXXXX`` past the BMP (``\\u12544``
    would read as U+1254 then ``4``)."""
    return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"
