"""Rendering report rows: a rich table (boxed for a terminal, plain ASCII for a pipe or a file,
as ``print_table`` draws tables), CSV, JSON and Markdown."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final, Literal, TextIO

from daemon.ledger.export import csv_cell, marked
from daemon.reports.lines import shown
from daemon.reports.summary import COLUMNS, TOTALS_KEY, ReportRow

__all__ = [
    "FORMATS", "TABLE_ROWS", "Format", "counted", "fixed", "render", "report_payload", "share",
    "unsigned_zero", "write_report",
]  # fmt: skip

Format = Literal["table", "csv", "json", "md"]
FORMATS: Final[tuple[Format, ...]] = ("table", "csv", "json", "md")

# The most groups the terminal table shows: laying out 100,000 rows took rich minutes and
# gigabytes, for a table nobody reads on a terminal.
TABLE_ROWS: Final = 1000

# Table headings with units (the CSV/JSON keys carry their units in their names).
_HEADINGS: Final = {
    "key": "group",
    "jobs": "jobs",
    "gpu_hours": "GPU-h",
    "energy_kwh": "kWh",
    "measured_share": "measured",
    "operational_kg": "oper. kg",
    "embodied_kg": "embod. kg",
    "total_kg": "total kgCO2e",
    "unaccounted_jobs": "no grams",
    "deadlines_missed": "late",
    "intensity_g_per_kwh": "grid g/kWh",  # the grid's, energy-weighted: not on-site energy
    "intensity_sources": "signal rung",
    "energy_methods": "energy method",
    "sci_g_per_request": "g/request",
    "sci_g_per_1k_output_tokens": "g/1k tok",
    "run_now_kg": "run-now kg",
    "saved_kg": "saved kg",
    "saved_share": "saved",
    "grid_kwh": "grid kWh",
    "pv_kwh": "PV kWh",
    "battery_kwh": "batt. kWh",
    "offset_share": "on-site",
}


# The terminal table leaves out the on-site columns when no job used on-site energy.
_SITE_COLUMNS: Final = ("grid_kwh", "pv_kwh", "battery_kwh", "offset_share")
_NO_SITE: Final = tuple(c for c in COLUMNS if c not in _SITE_COLUMNS)


def report_payload(
    rows: Sequence[ReportRow], totals: ReportRow, meta: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON document: ``meta`` (period, grouping, signal), ``rows`` and ``totals``."""
    return {**meta, "rows": [r.as_dict() for r in rows], "totals": totals.as_dict()}


def render(
    fmt: Format,
    rows: Sequence[ReportRow],
    totals: ReportRow,
    meta: Mapping[str, Any],
    *,
    width: int | None = None,
    tty: bool = False,
) -> str:
    """The report as text in ``fmt``: what :func:`write_report` writes."""
    out = io.StringIO()
    write_report(out, fmt, rows, lambda: totals, meta, width=width, tty=tty)
    return out.getvalue()


def write_report(
    out: TextIO,
    fmt: Format,
    rows: Iterable[ReportRow],
    totals: Callable[[], ReportRow],
    meta: Mapping[str, Any],
    *,
    width: int | None = None,
    tty: bool = False,
) -> None:
    """Write the report in ``fmt`` to ``out``. CSV, JSON and Markdown write each row as it is
    made, then the totals row (``totals()``, asked for after the last row), so a report over
    every job holds none of them. The table is sized to ``width`` columns (None: a pipe or a
    file, as wide as its cells, none folded), boxed for a terminal (``tty``) and drawn with
    ``+ - |`` otherwise, and shows at most
    :data:`TABLE_ROWS` groups, then the totals over every group. In all but JSON (whose
    totals are apart, and which keeps every value as stored) a group named as the totals row
    (a job ``TOTAL``, a user ``TOTAL``) reads ``'TOTAL``, as a formula-like cell is marked
    (:func:`~daemon.ledger.export.csv_cell`), and a name that begins with ``'`` gets one more
    (:func:`_not_totals`): the last row is the only ``TOTAL``, and no two groups read alike."""
    if fmt != "json":
        rows = (_not_totals(row, formula=fmt == "csv") for row in rows)
    if fmt == "json":
        _write_json(out, rows, totals, meta)
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow(_csv_cells(row))
        writer.writerow(_csv_cells(totals()))
    elif fmt == "md":
        headings = [_HEADINGS[c] for c in COLUMNS]
        out.write(f"# {meta.get('title', 'carbond report')}\n\n")
        out.writelines(f"- {k}: {v}\n" for k, v in meta.items() if k != "title" and v is not None)
        out.write("\n| " + " | ".join(headings) + " |\n|" + "---|" * len(headings) + "\n")
        for row in _then(rows, totals):
            out.write("| " + " | ".join(_cells(row, COLUMNS)) + " |\n")
    else:
        out.write(_table_text(rows, totals, meta, width, tty))


def _not_totals(row: ReportRow, *, formula: bool) -> ReportRow:
    """``row``, a group's, with a name that would read as the totals row's marked ``'``, and
    so too a name that begins with ``'`` and (``formula``: CSV) one a spreadsheet would run
    (:func:`~daemon.ledger.export.marked`): a reader drops one leading ``'`` of a group's name
    to have it as recorded. Until 2026-12-07 a group ``'TOTAL`` read ``'TOTAL`` as a group
    ``TOTAL`` did, and a group ``'=x`` as ``=x``'s CSV cell: two groups, one name."""
    key = row.key
    if key is None:
        return row
    return replace(row, key="'" + key if key == TOTALS_KEY else marked(key, formula=formula))


def _then(rows: Iterable[ReportRow], totals: Callable[[], ReportRow]) -> Iterator[ReportRow]:
    yield from rows
    yield totals()


def _csv_cells(row: ReportRow) -> list[str]:
    """A row's CSV cells; its name (``key``) as :func:`_not_totals` marked it (a group's) or
    as it is (the totals row's ``TOTAL``)."""
    return ["" if v is None else v if name == "key" else csv_cell(v)
            for name, v in row.as_dict().items()]  # fmt: skip


def _cells(row: ReportRow, shown: Sequence[str]) -> list[str]:
    values = row.as_dict()
    return [_cell(name, values[name]) for name in shown]


def _write_json(
    out: TextIO,
    rows: Iterable[ReportRow],
    totals: Callable[[], ReportRow],
    meta: Mapping[str, Any],
) -> None:
    """:func:`report_payload` as ``json.dumps(..., indent=2)`` writes it, a row at a time:
    each value is dumped alone and indented to its depth (a dumped value holds no newline
    but those of its layout: JSON escapes a newline in a string)."""
    out.write("{\n")
    for key, value in meta.items():
        out.write(f"  {json.dumps(key)}: {_dumped(value, 1)},\n")
    out.write('  "rows": [')
    first = True
    for row in rows:
        out.write(("\n    " if first else ",\n    ") + _row_json(row, 2))
        first = False
    out.write(("]" if first else "\n  ]") + ',\n  "totals": ')
    out.write(_row_json(totals(), 1) + "\n}\n")


def _dumped(value: Any, depth: int) -> str:
    return json.dumps(_clean(value), indent=2).replace("\n", "\n" + "  " * depth)


# A row's keys as JSON, once: ``"key": ``.
_KEYS_JSON: Final = tuple(f"{json.dumps(name)}: " for name in COLUMNS)


def _row_json(row: ReportRow, depth: int) -> str:
    """``_dumped(row.as_dict(), depth)``, a row's flat fields laid out directly: with an indent
    the json module encodes in Python, a third of ``report --by job --json``'s time."""
    pad = "\n" + "  " * (depth + 1)
    values = (getattr(row, name) for name in COLUMNS)
    fields = (key + _scalar(value) for key, value in zip(_KEYS_JSON, values, strict=True))
    return "{" + pad + ("," + pad).join(fields) + "\n" + "  " * depth + "}"


def _scalar(value: Any) -> str:
    """A field's JSON, as ``json.dumps(_clean(value))`` writes it."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "null"
    return json.dumps(value)


def _table_text(
    rows: Iterable[ReportRow],
    totals: Callable[[], ReportRow],
    meta: Mapping[str, Any],
    width: int | None,
    tty: bool,
) -> str:
    """The table of the first :data:`TABLE_ROWS` groups and the totals (a page, as `carbond
    jobs` shows); the rest are counted only."""
    shown_rows: list[ReportRow] = []
    count = 0
    for row in rows:
        count += 1
        if count <= TABLE_ROWS:
            shown_rows.append(row)
    total = totals()
    if count > TABLE_ROWS:
        meta = {**meta, "shown": f"the first {TABLE_ROWS:,} of {count:,} groups, and the "
                "total over all (--format csv, md or json lists every group)"}  # fmt: skip
    shown = COLUMNS if total.pv_kwh or total.battery_kwh else _NO_SITE
    cells = [_cells(r, shown) for r in (*shown_rows, total)]
    if width is not None:  # a terminal: the columns that fit its width, none folded
        kept = _fitting(shown, cells, width)
        if len(kept) < len(shown):
            left = ", ".join(_HEADINGS[c] for c in shown if c not in kept)
            meta = {**meta, "left_out": f"{left} (at {width} columns; a wider terminal shows "
                    "them, --format csv, md or json has every column)"}  # fmt: skip
            at = [shown.index(c) for c in kept]
            shown, cells = tuple(kept), [[row[i] for i in at] for row in cells]
    return _table([_HEADINGS[c] for c in shown], cells, meta, width, tty)


# The order in which a terminal too narrow for every column keeps them (shown in the table's
# own order): the group and its carbon first, the breakdowns and labels last.
_KEPT_FIRST: Final = (
    "key", "total_kg", "saved_kg", "saved_share", "jobs", "energy_kwh", "intensity_g_per_kwh",
    "run_now_kg", "operational_kg", "embodied_kg", "offset_share", "deadlines_missed",
    "unaccounted_jobs", "gpu_hours", "measured_share", "sci_g_per_request",
    "sci_g_per_1k_output_tokens", "grid_kwh", "pv_kwh", "battery_kwh", "energy_methods",
    "intensity_sources",
)  # fmt: skip


def _fitting(shown: Sequence[str], cells: Sequence[Sequence[str]], width: int) -> list[str]:
    """The columns of ``shown`` a table ``width`` wide holds with no cell folded, taken in
    :data:`_KEPT_FIRST` order while they fit (the group and total always), in ``shown``'s
    order. Until 2026-12-07 an 80-column terminal folded all 18 columns' cells a character
    or two wide: every figure read down, over up to nine lines."""
    from rich.cells import cell_len

    def needs(name: str) -> int:  # its widest cell or heading, the padding and a border
        i = shown.index(name)
        return max(cell_len(_HEADINGS[name]), *(cell_len(row[i]) for row in cells)) + 3

    kept, used = set[str](), 1  # the left border
    for name in (c for c in _KEPT_FIRST if c in shown):
        if used + needs(name) <= width or name in ("key", "total_kg"):
            kept.add(name)
            used += needs(name)
    return [c for c in shown if c in kept]


def _table(
    headings: Sequence[str], cells: Sequence[Sequence[str]], meta: Mapping[str, Any],
    width: int | None, tty: bool,
) -> str:  # fmt: skip
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(str(meta.get("title", "carbond report"))),
        show_lines=False,
        box=box.HEAVY_HEAD if tty else box.ASCII,  # print_table's rule (daemon.cli.output)
    )
    for heading in headings:
        table.add_column(
            heading, overflow="fold", justify="left" if heading == "group" else "right"
        )
    for i, row in enumerate(cells):
        # cells as text, never markup: a group is a login name, a region, a job id
        table.add_row(*(Text(c) for c in row), end_section=i == len(cells) - 2)
    out = io.StringIO()
    if width is None:  # a pipe or a file: as wide as the table is, no cell folded
        width = max(_natural_width(table), _PIPED_WIDTH)
    console = Console(file=out, width=width, force_terminal=False, color_system=None)
    console.print(table)
    notes = [f"{k}: {v}" for k, v in meta.items() if k != "title" and v is not None]
    return out.getvalue() + "\n".join(notes) + ("\n" if notes else "")


# The least width a piped or written table is laid out for (its title centred over it).
_PIPED_WIDTH: Final = 220


def _natural_width(table: Any) -> int:
    """The columns ``table`` takes with no cell folded: a pipe or a file has no edge, and a
    figure folded over two lines reads as two (``0.00510`` above ``8``)."""
    from rich.console import Console
    from rich.measure import Measurement

    probe = Console(file=io.StringIO(), width=1_000_000, color_system=None)
    return Measurement.get(probe, probe.options, table).maximum


def _cell(name: str, value: Any) -> str:
    if name == "key":  # a group not recorded (None) has a name in text
        return shown(value)
    if value is None:
        return "-"
    if name in ("measured_share", "saved_share", "offset_share"):
        return share(value)
    if isinstance(value, float):
        return fixed(value)
    return str(value)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` with thousands separators and ``noun`` in the number it takes: ``1 job``,
    ``2 jobs`` (``plural``: the form for any other count, where adding ``s`` is wrong:
    ``counted(n, "job has", "jobs have")``). Until 2026-12-07 ``carbond prune-logs`` printed
    ``of 1 jobs``."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def share(value: float, places: int = 1) -> str:
    """A share as a percent to ``places`` decimals (``97.3%``), and to more (four at most)
    where that would hide it: a nonzero share that reads ``0.0%``, or one short of 100 % that
    reads ``100.0%`` (``0.004%``, ``99.996%``). Until 2026-12-07 the table and Markdown wrote
    whole percents: ``measured 100%`` hid some estimated energy and ``saved 0%`` was 0.28 %."""
    for decimals in range(places, 5):
        text = unsigned_zero(f"{value:.{decimals}%}")
        figure = abs(float(text[:-1]))
        if (figure != 0 or value == 0) and (figure != 100 or abs(value) == 1):
            return text
    return unsigned_zero(f"{value:.{places}%}")  # within a millionth of 0 or 100 %: noise


def unsigned_zero(text: str) -> str:
    """``text``, a formatted figure, without its minus sign where it shows zero: a saving
    rounded to ``-0.00`` or ``-0%`` is shown ``0.00``, ``0%`` (it is not a loss)."""
    if text.startswith("-") and not any(c in "123456789" for c in text):
        return text[1:]
    return text


def fixed(value: float, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits (a whole number's every digit) in fixed
    notation with thousands separators, trailing zeros dropped: ``12,346``, ``123.5``,
    ``0.0001235``, ``0.00000000665``; ``0`` for zero and ``-`` for a
    value not finite. Below a trillionth (:data:`_NOISE`) a figure is a sum's float noise
    (about 1e-16 of the sum), and ``-3.553e-15`` reads ``0``. Until 2026-12-07 the table and
    Markdown wrote ``.4g``: a year of GPU-hours read ``1.235e+04``; until 2026-12-07 nine
    decimals at most: the 6.65e-09 g of one token at 0.01 gCO2e/kWh read ``0.000000007``."""
    if abs(value) < _NOISE or not math.isfinite(value):
        return "0" if abs(value) < _NOISE else "-"
    places = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{places}f}"
    return unsigned_zero(text.rstrip("0").rstrip(".") if "." in text else text)


_NOISE: Final = 1e-12


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
