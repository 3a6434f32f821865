"""docs/daemon.md's table of queue-line fields is the parser's: every field a line may carry
has a row, every row names fields the parser has, and the defaults and ranges it shows (``128,
150``; ``int 1..64``; ``int ≥ 1``; ``number > 0``) are the parser's own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le

from daemon.queue.line import _JobLine

PAGE = Path(__file__).resolve().parents[3] / "docs" / "daemon.md"


def rows() -> list[tuple[list[str], str, str]]:
    """``(fields, type cell, default cell)`` of each row of the page's field table."""
    text = PAGE.read_text(encoding="utf-8")
    table = text[text.index("| field | type | default | meaning |") :].split("\n\n", 1)[0]
    found = []
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        found.append((re.findall(r"`(\w+)`", cells[0]), cells[1], cells[2]))
    return found


def _bounds(field: str) -> tuple[float | None, float | None, float | None]:
    """(ge, gt, le) of a parser field."""
    ge = gt = le = None
    for item in _JobLine.model_fields[field].metadata:
        if isinstance(item, Ge):
            ge = float(item.ge)  # type: ignore[arg-type]  # a number bound on a number field
        elif isinstance(item, Gt):
            gt = float(item.gt)  # type: ignore[arg-type]
        elif isinstance(item, Le):
            le = float(item.le)  # type: ignore[arg-type]
    return ge, gt, le


def _shown(cell: str) -> Iterator[Any]:
    """The literal values a default cell shows, one per field (words, ``—``: none)."""
    for value in cell.split(", "):
        if re.fullmatch(r"\d+(\.\d+)?", value):
            yield float(value)
        elif m := re.fullmatch(r"`([\w-]+)`", value):
            yield m.group(1)
        elif value == "[]":
            yield []
        else:
            yield None


def problems() -> Iterator[str]:
    for fields, kind, default in rows():
        for field, shown in zip(fields, _shown(default), strict=False):
            if field not in _JobLine.model_fields:
                yield f"{field}: no such field"
                continue
            code = _JobLine.model_fields[field].get_default(call_default_factory=True)
            if shown is not None and shown != code:
                yield f"{field}: default shown {shown!r}, the parser's {code!r}"
            ge, gt, le = _bounds(field)
            typed = kind.replace("−", "-")  # the page's minus sign
            shown_bounds = [
                (m.group(0), (ge, le), (float(m.group(1)), float(m.group(2))))
                for m in re.finditer(r"(-?\d+)\.\.(\d+)", typed)
            ]
            shown_bounds += [
                (m.group(0), ge, float(m.group(1))) for m in re.finditer(r"≥ (\d+)", typed)
            ]
            shown_bounds += [
                (m.group(0), gt, float(m.group(1))) for m in re.finditer(r"> (\d+)", typed)
            ]
            for text, code_bound, shown_bound in shown_bounds:
                if code_bound != shown_bound:
                    yield f"{field}: shown {text}, the parser's {code_bound}"


def test_every_field_has_a_row() -> None:
    shown = {field for fields, _, _ in rows() for field in fields}
    assert set(_JobLine.model_fields) <= shown, set(_JobLine.model_fields) - shown


def test_the_rows_show_the_parser_s_defaults_and_ranges() -> None:
    wrong = list(problems())
    assert not wrong, "\n".join(wrong)


def test_the_scan_reads_the_rows() -> None:
    table = {field: (kind, default) for fields, kind, default in rows() for field in fields}
    assert table["tensor_parallel"] == ("int 1..64", "1")
    assert list(_shown("`fp16`, `hf-eager`")) == ["fp16", "hf-eager"]
    assert list(_shown("one batch, 1")) == [None, 1.0]
    assert _bounds("priority") == (-1000.0, None, 1000.0)
