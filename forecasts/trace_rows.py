"""The rows of a CSV trace: its format told by its header, each row parsed, a bad row skipped
and reported as a :class:`DataIssue` naming file, line and column (the formats and what is
reported: :mod:`forecasts.traces`)."""

from __future__ import annotations

import csv
import gzip
import io
import math
import zlib
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TextIO, TypeAlias

from forecasts.errors import TraceFormatError
from forecasts.series import MAX_INTENSITY_G_PER_KWH, SignalKind

__all__ = [
    "TRACE_FORMATS",
    "BadRows",
    "DataIssue",
    "TimeNotes",
    "TraceRows",
    "open_text",
    "read_rows",
]


@dataclass(frozen=True, slots=True)
class _Format:
    name: str
    time: str
    zone: str
    lifecycle: str
    direct: str | None
    estimated: str | None
    naive_is_utc: bool


TRACE_FORMATS: Final[tuple[_Format, ...]] = (
    _Format(
        "portal",
        "Datetime (UTC)",
        "Zone Id",
        "Carbon Intensity gCO₂eq/kWh (LCA)",
        "Carbon Intensity gCO₂eq/kWh (direct)",
        "Data Estimated",
        True,
    ),
    _Format(
        "normalized",
        "datetime_utc",
        "zone",
        "carbon_intensity_gco2_per_kwh",
        "carbon_intensity_direct_gco2_per_kwh",
        "is_estimated",
        True,
    ),
    _Format(
        "minimal", "datetime", "zone", "carbon_intensity_g_per_kwh", None, "is_estimated", False
    ),
)
# (zone, "offset" or "naive") -> (first line, number of lines): what read_rows saw of times
# given with a UTC offset, or naive in a format that does not say UTC
TimeNotes: TypeAlias = dict[tuple[str, str], tuple[int, int]]
MAX_BAD_ROWS_LISTED: Final = 20  # bad rows reported one by one; the rest as a count
_TRUE: Final = {"true", "1", "yes"}
_FALSE: Final = {"false", "0", "no", ""}


@dataclass(frozen=True, slots=True)
class DataIssue:
    """One problem found in a trace; ``line`` is the first line concerned (1 = header)."""

    path: str
    zone: str | None
    kind: str  # gap, duplicate, unsorted, step_tie, non_utc_offset, naive_time, bad_row, ...
    message: str
    line: int | None = None
    count: int = 1

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.zone or '-'}: {self.kind}: {self.message}"


def open_text(path: Path) -> TextIO:
    """``path`` as text, as every trace is read: ``.gz`` decompressed, a leading byte-order
    mark (a spreadsheet's UTF-8 export) dropped, newlines as written (for ``csv``).

    Raises:
        OSError: it cannot be opened.
    """
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _open_text(path: Path) -> TextIO:
    try:
        return open_text(path)
    except OSError as e:
        raise TraceFormatError(str(path), None, None, f"cannot open: {e.strerror or e}") from e


def _detect(path: str, header: list[str]) -> tuple[_Format, dict[str, int]]:
    """The format and each column's index.

    Raises:
        TraceFormatError: no format's header, its intensity column missing, or a column it
            reads given twice (the last one was read, silently).
    """
    columns = {name.strip(): k for k, name in enumerate(header)}
    for fmt in TRACE_FORMATS:
        if fmt.time in columns and fmt.zone in columns:
            for required in (fmt.lifecycle,):
                if required not in columns:
                    raise TraceFormatError(
                        path, 1, required, f"{fmt.name} trace is missing this column"
                    )
            names = Counter(name.strip() for name in header)
            read = (fmt.time, fmt.zone, fmt.lifecycle, fmt.direct, fmt.estimated)
            for name in read:
                if name is not None and names[name] > 1:
                    raise TraceFormatError(
                        path, 1, name, f"given {names[name]} times in the header (give it once)"
                    )
            return fmt, columns
    expected = "; ".join(
        f"{f.name}: {f.time!r}, {f.zone!r}, {f.lifecycle!r}" for f in TRACE_FORMATS
    )
    raise TraceFormatError(path, 1, None, f"unrecognised header {header!r}; expected {expected}")


@dataclass(slots=True)
class TraceRows:
    secs: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    estimated: list[bool] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


def _parse_time(path: str, line: int, column: str, text: str, fmt: _Format) -> tuple[float, str]:
    """Unix seconds and a note (``""``, ``"naive"`` or ``"offset"``)."""
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise TraceFormatError(path, line, column, f"not a date-time: {text!r}") from e
    try:
        if t.tzinfo is None:
            return t.replace(tzinfo=UTC).timestamp(), "" if fmt.naive_is_utc else "naive"
        offset = t.utcoffset()
        return t.astimezone(UTC).timestamp(), "offset" if offset else ""
    except (OverflowError, ValueError) as e:  # e.g. 0001-01-01T00:00+14:00 is in year 0 UTC
        raise TraceFormatError(path, line, column, f"date-time out of range: {text!r}") from e


def _parse_value(path: str, line: int, column: str, text: str) -> float:
    text = text.strip()
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError as e:
        raise TraceFormatError(path, line, column, f"not a number: {text!r}") from e
    # above MAX_INTENSITY_G_PER_KWH (a typo, kg for g) was read as it stood, where the API
    # client and the commands' --intensity refuse it
    if not math.isfinite(value) or not 0 <= value <= MAX_INTENSITY_G_PER_KWH:
        raise TraceFormatError(
            path, line, column,
            f"intensity must be 0 to {MAX_INTENSITY_G_PER_KWH:,.0f} g/kWh: {text!r}",
        )  # fmt: skip
    return value


def _parse_flag(path: str, line: int, column: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise TraceFormatError(path, line, column, f"expected true/false, got {text!r}")


@dataclass(slots=True)
class BadRows:
    """Rows skipped: the first ``MAX_BAD_ROWS_LISTED`` as issues, then a count."""

    first: TraceFormatError | None = None
    issues: list[DataIssue] = field(default_factory=list)
    count: int = 0

    def add(self, error: TraceFormatError, zone: str | None) -> None:
        self.first = self.first or error
        self.count += 1
        if len(self.issues) < MAX_BAD_ROWS_LISTED:
            where = f"{error.path}:{error.line}: "
            message = str(error).removeprefix(where) + "; row skipped"
            self.issues.append(DataIssue(error.path, zone, "bad_row", message, error.line))

    def summary(self, path: str) -> list[DataIssue]:
        more = self.count - len(self.issues)
        tail = [DataIssue(path, None, "bad_row", f"{more} more bad rows skipped", None, more)]
        return self.issues + (tail if more else [])


def _parse_row(
    name: str,
    line: int,
    record: list[str],
    fmt: _Format,
    columns: tuple[int, int, int, int | None],
    value_col: str,
) -> tuple[float, str, float, bool]:
    """(unix seconds, time note, value, estimated) of one row.

    Raises:
        TraceFormatError: the row is bad (names line and column).
    """
    i_time, _, i_value, i_est = columns
    secs, note = _parse_time(name, line, fmt.time, record[i_time], fmt)
    value = _parse_value(name, line, value_col, record[i_value])
    est = (
        _parse_flag(name, line, fmt.estimated or "", record[i_est]) if i_est is not None else False
    )
    return secs, note, value, est


def _note(notes: TimeNotes, zone: str, note: str, line: int) -> None:
    """Count ``note`` (none where ``""``) for ``zone``, keeping the first line it was seen."""
    if note:
        first, n = notes.get((zone, note), (line, 0))
        notes[zone, note] = (first, n + 1)


def read_rows(
    path: Path,
    kind: SignalKind,
    zones: Collection[str] | None,
    bad: BadRows,
    others: set[str] | None = None,
) -> tuple[_Format, dict[str, TraceRows], TimeNotes]:
    """The rows of ``zones`` (all where None) by zone (its rows in any case, keyed as first
    spelt), the times noted (offset or naive) by
    zone with their first line and count, bad rows to ``bad``, and the zones of the rows left
    out by ``zones`` added to ``others`` (for an error naming what the file has).
    """
    name = str(path)
    wanted = {z.lower() for z in zones} if zones else None
    rows: dict[str, TraceRows] = {}
    notes: TimeNotes = {}
    spelt: dict[str, str] = {}  # a zone's rows in any case are one zone, spelt as first seen
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise TraceFormatError(name, 1, None, "empty file") from None
        except (csv.Error, UnicodeDecodeError, EOFError, OSError, zlib.error) as e:
            raise TraceFormatError(name, 1, None, f"not a CSV file: {e}") from e
        fmt, columns = _detect(name, header)
        value_col = fmt.lifecycle if kind == "lifecycle" else fmt.direct
        if value_col is None or value_col not in columns:
            raise TraceFormatError(name, 1, value_col, f"no {kind} intensity column")
        i_time, i_zone, i_value = columns[fmt.time], columns[fmt.zone], columns[value_col]
        i_est = columns.get(fmt.estimated) if fmt.estimated else None
        indices = (i_time, i_zone, i_value, i_est)
        try:
            for record in reader:
                line = reader.line_num
                if not record or (len(record) == 1 and not record[0].strip()):
                    continue
                zone = record[i_zone].strip() if i_zone < len(record) else ""
                if wanted is not None and zone.lower() not in wanted:
                    if others is not None and zone:
                        others.add(zone)
                    continue
                try:
                    # a field past the header's (a decimal comma: 123,45 was read as 123); a
                    # trailing comma's empty field is read
                    if len(record) < len(header) or any(
                        cell.strip() for cell in record[len(header) :]
                    ):
                        raise TraceFormatError(
                            name, line, None, f"{len(record)} fields, header has {len(header)}"
                        )
                    if not zone:
                        raise TraceFormatError(name, line, fmt.zone, "empty zone")
                    secs, note, value, est = _parse_row(name, line, record, fmt, indices, value_col)
                except TraceFormatError as error:  # this row only: the others are kept
                    bad.add(error, zone or None)
                    continue
                zone = spelt.setdefault(zone.lower(), zone)  # until 2026-12-07 one per case
                _note(notes, zone, note, line)
                bucket = rows.setdefault(zone, TraceRows())
                bucket.secs.append(secs)
                bucket.values.append(value)
                bucket.estimated.append(est)
                bucket.lines.append(line)
        except (csv.Error, UnicodeDecodeError, EOFError, OSError, zlib.error) as e:
            raise TraceFormatError(name, reader.line_num, None, f"unreadable: {e}") from e
    return fmt, rows, notes
