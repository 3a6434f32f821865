"""Which raw queue lines may name one job id: the cheap test that lets ``carbond status ID``,
``cancel ID`` and ``submit --id`` parse only those of 100,000 unread lines
(:mod:`daemon.queue.unread_lines`).

A line names an id only in a JSON string: ``"`` then each of its characters in one of the forms
JSON allows, then ``"``. A line with no backslash can spell it only plainly (its JSON form in
UTF-8, as the daemon decodes a line); a line with one may spell any character as an escape
(``\\u0061`` is ``a``, ``\\/`` is ``/``), so it is matched against every such spelling of the
whole string. Until 2026-12-07 any line with a backslash passed: a queue of lines with
backslashes in their commands or names was parsed whole for each lookup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

__all__ = ["may_name"]

# the two-character escapes JSON has, besides \uXXXX (RFC 8259, section 7)
_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n",
          "\r": "\\r", "\t": "\\t"}  # fmt: skip
_BMP = 0xFFFF


def may_name(job_id: str) -> Callable[[bytes], bool]:
    """Whether a raw line may hold ``job_id`` as a JSON string (in any spelling JSON decodes
    to it); False only for a line that cannot (it is then not parsed). It may say True for a
    line that does not (a match across two strings' quotes): those are parsed, as before."""
    plain = json.dumps(job_id, ensure_ascii=False).encode("utf-8", "surrogatepass")
    spelled = re.compile(b'"' + b"".join(_spellings(char) for char in job_id) + b'"')

    def test(raw: bytes) -> bool:
        if plain in raw:
            return True
        return b"\\" in raw and spelled.search(raw) is not None

    return test


def _spellings(char: str) -> bytes:
    """A pattern matching every JSON spelling of ``char`` inside a string: itself (UTF-8),
    when JSON lets it stand (not ``"``, ``\\``, a control character or a lone surrogate,
    which UTF-8 cannot hold), its short escape, and ``\\uXXXX`` in either case (a character
    past the BMP: its UTF-16 surrogate pair, two such escapes)."""
    code = ord(char)
    forms = []
    if code >= 0x20 and char not in '"\\' and not 0xD800 <= code <= 0xDFFF:
        forms.append(re.escape(char.encode("utf-8")))
    if char in _SHORT:
        forms.append(re.escape(_SHORT[char].encode()))
    if code > _BMP:
        high, low = divmod(code - 0x10000, 0x400)
        forms.append(_escape(0xD800 + high) + _escape(0xDC00 + low))
    else:
        forms.append(_escape(code))
    return b"(?:" + b"|".join(forms) + b")"


def _escape(code: int) -> bytes:
    """``\\uXXXX`` of UTF-16 unit ``code``, its hex digits in either case."""
    digits = (f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{code:04x}")
    return b"\\\\u" + "".join(digits).encode()
