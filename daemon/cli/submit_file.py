"""``carbond submit --file``: the job file read as one JSON object, and its fields' lines, so
that a bad field the file gives is named ``FILE:LINE: field 'x'`` (a flag's is not)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

from daemon.errors import UsageError
from daemon.queue.line import json_value
from daemon.queue.reasons import InvalidLineError

__all__ = ["name_file_fields", "read_job_file"]

_FIELD = re.compile(r"field '([^'.]+)")
_DECODER = json.JSONDecoder()


def read_job_file(name: str) -> tuple[dict[str, Any], str]:
    """The job object in file ``name`` (``-``: stdin) and the file's text.

    Raises:
        UsageError: unreadable, not UTF-8, not JSON or not an object (exit 2), naming ``name``.
    """
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{name}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name}: not UTF-8 text (byte {exc.start})") from exc
    try:
        data = json_value(text)
    except InvalidLineError as exc:
        raise UsageError(f"{name}: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{name}: a job is a JSON object")
    return data, text


def name_file_fields(message: str, name: str, text: str, fields: Collection[str]) -> str:
    """``message`` (a queue line's problems, each ``field 'x...': why``) with each problem of
    a top-level field in ``fields`` (those the file gave and no flag replaced) prefixed with
    ``FILE:LINE: `` (``stdin`` for ``-``), the line of the file's last key of that name."""
    lines = _key_lines(text)
    shown = "stdin" if name == "-" else name

    def prefix(found: re.Match[str]) -> str:
        key = found[1]
        if key not in fields or key not in lines:
            return found[0]
        return f"{shown}:{lines[key]}: {found[0]}"

    return _FIELD.sub(prefix, message)


def _key_lines(text: str) -> dict[str, int]:
    """The line of each key of the top-level object in ``text`` (valid JSON: it parsed), the
    last one where a key repeats, as ``json.loads`` keeps the last value."""
    lines: dict[str, int] = {}
    at = _skip(text, 0)
    if text[at : at + 1] != "{":
        return lines
    at = _skip(text, at + 1)
    while text[at : at + 1] == '"':
        key, end = _DECODER.raw_decode(text, at)
        lines[key] = text.count("\n", 0, at) + 1
        at = _skip(text, _skip(text, end) + 1)  # past the ':'
        _, at = _DECODER.raw_decode(text, at)
        at = _skip(text, at)
        if text[at : at + 1] != ",":
            break
        at = _skip(text, at + 1)
    return lines


def _skip(text: str, at: int) -> int:
    """The first position from ``at`` that is not JSON whitespace."""
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at
