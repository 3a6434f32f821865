"""Rendering report rows: a rich table (boxed for a terminal, plain ASCII for a pipe or a file,
as ``print_table`` draws tables), CSV, JSON and Markdown."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from daemon.ledger.export import csv_cell
from daemon.reports.summary import COLUMNS, ReportRow

__all__ = ["FORMATS", "TABLE_ROWS", "Format", "render", "report_payload"]

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
    "offset": "on-site",
}


# The terminal table leaves out the on-site columns when no job used on-site energy.
_SITE_COLUMNS: Final = ("grid_kwh", "pv_kwh", "battery_kwh", "offset")
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
    """The report as text in ``fmt`` (the table is sized to ``width`` columns, boxed for a
    terminal (``tty``) and drawn with ``+ - |`` otherwise, and shows at most
    :data:`TABLE_ROWS` groups, then the totals over every group)."""
    if fmt == "json":
        return json.dumps(_clean(report_payload(rows, totals, meta)), indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in (*rows, totals):
            writer.writerow(["" if v is None else csv_cell(v) for v in row.as_dict().values()])
        return out.getvalue()
    if fmt == "table" and len(rows) > TABLE_ROWS:  # a page, as `carbond jobs` shows
        meta = {**meta, "shown": f"the first {TABLE_ROWS:,} of {len(rows):,} groups, and the "
                "total over all (--format csv, md or json lists every group)"}  # fmt: skip
        rows = rows[:TABLE_ROWS]
    shown = COLUMNS if fmt == "md" or totals.pv_kwh or totals.battery_kwh else _NO_SITE
    cells = [[_cell(name, r.as_dict()[name]) for name in shown] for r in (*rows, totals)]
    headings = [_HEADINGS[c] for c in shown]
    if fmt == "md":
        lines = [f"# {meta.get('title', 'carbond report')}", ""]
        lines += [f"- {k}: {v}" for k, v in meta.items() if k != "title" and v is not None]
        lines += ["", "| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        return "\n".join(lines) + "\n"
    return _table(headings, cells, meta, width, tty)


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
    console = Console(file=out, width=width or 220, force_terminal=False, color_system=None)
    console.print(table)
    notes = [f"{k}: {v}" for k, v in meta.items() if k != "title" and v is not None]
    return out.getvalue() + "\n".join(notes) + ("\n" if notes else "")


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name in ("measured_share", "saved_share", "offset"):
        return f"{value:.0%}"
    if isinstance(value, float):
        return _sig(value)
    return str(value)


def _sig(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else "-"
    return f"{value:.4g}"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
