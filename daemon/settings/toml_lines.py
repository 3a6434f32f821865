"""The line of a TOML file that sets a value, so that a problem with it can name the line.

``tomllib`` keeps no positions, so :func:`line_of` reads the text again, line by line: table
headers (``[a.b]``, ``[[a]]``, counted per array; ``[a.b]`` after ``[[a]]`` is a table of
``a``'s latest entry), ``key = value`` and dotted keys. Values that
span lines (arrays, inline tables, multi-line strings) are skipped as a whole. A key inside an
inline table or an array is found at the line of the key that holds it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence

__all__ = ["line_of", "syntax_parts", "syntax_problem"]

_PART = re.compile(r"""\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*""")
_KEY_LINE = re.compile(
    r"""^\s*((?:(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*\.\s*)*"""
    r"""(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+))\s*=(.*)$"""
)
_HEADER = re.compile(r"^\s*(\[\[?)([^\[\]]+)\]\]?\s*(?:#.*)?$")
_STRING = re.compile(r'"""|\'\'\'|"(?:[^"\\]|\\.)*"|\'[^\']*\'')
_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_AT_END = re.compile(r"\s*\(at end of document\)$")


def syntax_problem(exc: tomllib.TOMLDecodeError, where: str) -> str:
    """A TOML syntax error as a bad value is named, ``FILE:LINE: not valid TOML: WHY (column
    C)`` (``tomllib`` puts the position in its message: ``Invalid value (at line 3, column
    8)``), or ``FILE: not valid TOML: WHY (at the end of the file)``."""
    line, problem = syntax_parts(exc)
    return f"{where}: {problem}" if line is None else f"{where}:{line}: {problem}"


def syntax_parts(exc: tomllib.TOMLDecodeError) -> tuple[int | None, str]:
    """:func:`syntax_problem`'s line (None: at the end, or not said) and its text after
    ``FILE:LINE: ``."""
    message = str(exc)
    if found := _AT.search(message):
        why = message[: found.start()]
        return int(found[1]), f"not valid TOML: {why} (column {found[2]})"
    if found := _AT_END.search(message):
        return None, f"not valid TOML: {message[: found.start()]} (at the end of the file)"
    return None, f"not valid TOML: {message}"


def line_of(text: str, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of ``text`` where the value at ``loc`` (a pydantic error's location:
    keys, and indexes into arrays of tables) is set, or where its nearest enclosing key or
    table is; None when no part of it is in the file (a default, or a value from elsewhere)."""
    lines = _lines(text)
    for depth in range(len(loc), 0, -1):
        found = lines.get(tuple(str(p) for p in loc[:depth]))
        if found is not None:
            return found
    return None


def _lines(text: str) -> dict[tuple[str, ...], int]:
    """Every table and key path of ``text`` with the line that first names it."""
    scan = _Scan()
    for number, line in enumerate(text.splitlines(), start=1):
        scan.line(number, line)
    return scan.found


class _Scan:
    """The state of reading a TOML text line by line: the current table, how many of each
    array of tables so far, and whether a value that spans lines is still open."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, ...], int] = {}
        self._arrays: dict[tuple[str, ...], int] = {}
        self._table: tuple[str, ...] = ()
        self._brackets = 0
        self._string: str | None = None

    def line(self, number: int, line: str) -> None:
        if self._string is not None:  # inside a multi-line string
            if line.count(self._string) % 2 == 1:
                self._string = None
        elif self._brackets > 0:  # inside a multi-line array or inline table
            self._brackets += _depth(line)
        elif (header := _HEADER.match(line)) is not None:
            self._header(number, header.group(1) == "[[", header.group(2))
        elif (key := _KEY_LINE.match(line)) is not None:
            self._key(number, key.group(1), key.group(2))

    def _header(self, number: int, array: bool, dotted: str) -> None:
        parts = _parts(dotted)
        if parts is None:
            return
        if array:
            path = (*self._within(parts[:-1]), parts[-1])
            index = self._arrays.get(path, -1) + 1
            self._arrays[path] = index
            path = (*path, str(index))
        else:  # [regions.site] after [[regions]]: a table of the array's latest entry
            path = self._within(parts)
        self._table = path
        for depth in range(1, len(path) + 1):
            self.found.setdefault(path[:depth], number)

    def _within(self, parts: tuple[str, ...]) -> tuple[str, ...]:
        """``parts`` with the index of the latest entry after each array of tables in it."""
        path: tuple[str, ...] = ()
        for part in parts:
            path = (*path, part)
            if (index := self._arrays.get(path)) is not None:
                path = (*path, str(index))
        return path

    def _key(self, number: int, dotted: str, value: str) -> None:
        parts = _parts(dotted)
        if parts is not None:
            path = (*self._table, *parts)
            for depth in range(len(self._table) + 1, len(path) + 1):
                self.found.setdefault(path[:depth], number)
        for quote in ('"""', "'''"):
            if value.count(quote) % 2 == 1:
                self._string = quote
        if self._string is None:
            self._brackets = max(_depth(value), 0)


def _parts(dotted: str) -> tuple[str, ...] | None:
    """``a."b.c".d`` as ``("a", "b.c", "d")``; None when it is not a key."""
    parts = []
    for piece in _split_dots(dotted):
        match = _PART.fullmatch(piece)
        if match is None:
            return None
        parts.append(next(g for g in match.groups() if g is not None))
    return tuple(parts)


def _split_dots(dotted: str) -> list[str]:
    """``dotted`` split at the dots outside quotes."""
    pieces, current, quote = [], "", ""
    for char in dotted:
        if quote:
            quote = "" if char == quote and not current.endswith("\\") else quote
        elif char in "\"'":
            quote = char
        elif char == ".":
            pieces.append(current)
            current = ""
            continue
        current += char
    pieces.append(current)
    return pieces


def _depth(value: str) -> int:
    """Brackets and braces opened minus closed in ``value``, strings and comments left out."""
    bare = _STRING.sub("", value).split("#", 1)[0]
    return bare.count("[") + bare.count("{") - bare.count("]") - bare.count("}")
