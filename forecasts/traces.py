"""Read carbon-intensity CSV traces into series per zone, reporting every data problem.

Three formats, told apart by their header (anything else is rejected, naming file and line):

- ``portal``: the Electricity Maps data-portal export as users download it (``Datetime (UTC)``,
  ``Zone Id``, ``Carbon Intensity gCO₂eq/kWh (LCA)`` and ``(direct)``, ``Data Estimated``
  as ``true``/``True``, ...);
- ``normalized``: the long format of ``../shared/data/carbon_intensity/normalized``
  (``datetime_utc``, ``zone``, ``carbon_intensity_gco2_per_kwh``, ..., ``is_estimated``);
- ``minimal``: ``datetime,zone,carbon_intensity_g_per_kwh`` (optional ``is_estimated``).

Files ending in ``.gz`` are decompressed. Unsorted rows are sorted, duplicates keep the last
row, non-UTC offsets are converted, empty values and gaps become missing points (NaN), a bad row
(unreadable time, value or flag, too few fields or a non-empty one past the header's, no zone)
is skipped and becomes a gap, the rows around it kept (an intensity must be finite and 0 to
``MAX_INTENSITY_G_PER_KWH``, as the API client's) — and each of these is reported as a
:class:`DataIssue` naming file, line and column. A file whose rows are all bad raises the first
row's error. The step is the most common time between rows, the shortest of those tied
(reported). Gaps are only interpolated when asked (``fill_gaps=True``), and the filled points
are flagged ``is_estimated``.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import zlib
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TextIO

import numpy as np

from forecasts.errors import TraceFormatError
from forecasts.series import MAX_INTENSITY_G_PER_KWH, FloatArray, IntensitySeries, SignalKind

__all__ = [
    "MAX_TRACE_POINTS",
    "TRACE_FORMATS",
    "DataIssue",
    "TraceReadResult",
    "fill_gaps",
    "open_text",
    "read_trace",
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
MAX_BAD_ROWS_LISTED: Final = 20  # bad rows reported one by one; the rest as a count
MAX_TRACE_POINTS: Final = 5_000_000  # 570 years hourly, 9.5 minutely; 40 MB of float64
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


@dataclass(frozen=True, slots=True)
class TraceReadResult:
    """Series per zone (one kind, hourly or whatever step the file has) and the issues found."""

    path: str
    format: str
    kind: SignalKind
    series: Mapping[str, IntensitySeries]
    issues: tuple[DataIssue, ...] = field(default=())

    def zone(self, zone: str) -> IntensitySeries:
        """The series of ``zone`` (case-insensitive).

        Raises:
            TraceFormatError: the trace has no rows for ``zone``.
        """
        for key, series in self.series.items():
            if key.lower() == zone.lower():
                return series
        known = ", ".join(self.series) or "none"
        raise TraceFormatError(self.path, None, None, f"no rows for zone {zone!r} (has: {known})")


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
class _Rows:
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
class _BadRows:
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


def _read_rows(
    path: Path, kind: SignalKind, zones: Collection[str] | None, bad: _BadRows
) -> tuple[_Format, dict[str, _Rows], Counter[str]]:
    name = str(path)
    wanted = {z.lower() for z in zones} if zones else None
    rows: dict[str, _Rows] = {}
    notes: Counter[str] = Counter()
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
                notes[note] += 1
                bucket = rows.setdefault(zone, _Rows())
                bucket.secs.append(secs)
                bucket.values.append(value)
                bucket.estimated.append(est)
                bucket.lines.append(line)
        except (csv.Error, UnicodeDecodeError, EOFError, OSError, zlib.error) as e:
            raise TraceFormatError(name, reader.line_num, None, f"unreadable: {e}") from e
    return fmt, rows, notes


def _step(path: str, zone: str, diffs: FloatArray, issues: list[DataIssue]) -> float:
    """The most common of the rows' (positive) time ``diffs``, hourly where there is none. On
    a tie the shortest, said in ``issues``: the first found was taken, so rows at 0, 2 and 3 h
    read as a 2 h step, the third floored onto the second's point, where 0, 1 and 3 h read as
    hourly with a gap."""
    if not diffs.size:
        return 3600.0
    counts = Counter(diffs.tolist())
    most = max(counts.values())
    tied: list[float] = sorted(step for step, count in counts.items() if count == most)
    if len(tied) > 1:
        apart = ", ".join(f"{step:g}" for step in tied[:-1]) + f" and {tied[-1]:g}"
        issues.append(
            DataIssue(
                path, zone, "step_tie",
                f"rows {apart} s apart equally often ({most} each); the shortest step, "
                f"{tied[0]:g} s, taken",
            )
        )  # fmt: skip
    return tied[0]


def _to_series(
    path: str, zone: str, rows: _Rows, kind: SignalKind, source: str
) -> tuple[IntensitySeries, list[DataIssue]]:
    issues: list[DataIssue] = []
    secs = np.asarray(rows.secs)
    lines = np.asarray(rows.lines)
    values = np.asarray(rows.values)
    est = np.asarray(rows.estimated)
    if np.any(np.diff(secs) < 0):
        first_bad = int(lines[int(np.argmax(np.diff(secs) < 0)) + 1])
        issues.append(
            DataIssue(path, zone, "unsorted", "rows out of time order; sorted", first_bad)
        )
    order = np.argsort(secs, kind="stable")
    secs, lines, values, est = secs[order], lines[order], values[order], est[order]
    diffs = np.diff(secs)
    positive = diffs[diffs > 0]
    step = _step(path, zone, positive, issues)
    if step < 1:  # was a step of 0 s: NumPy's divide-by-zero warnings, then "inf points"
        raise TraceFormatError(
            path, int(lines[int(np.argmax(diffs == step)) + 1]), None,
            f"zone {zone}: rows {step:g} s apart; a trace's step is at least 1 s",
        )  # fmt: skip
    step_s = int(step)
    dup = diffs == 0
    if dup.any():
        n = int(dup.sum())
        first = int(lines[int(np.argmax(dup)) + 1])
        issues.append(
            DataIssue(path, zone, "duplicate", f"{n} repeated times; last kept", first, n)
        )
    origin = secs[0]
    slots_f = (secs - origin) / step_s
    off = slots_f != np.floor(slots_f)
    if off.any():
        n = int(off.sum())
        first = int(lines[int(np.argmax(off))])
        issues.append(
            DataIssue(
                path, zone, "off_grid", f"{n} times not on the {step_s}s grid; floored", first, n
            )
        )
    if slots_f[-1] >= MAX_TRACE_POINTS:
        raise TraceFormatError(
            path, int(lines[-1]), None,
            f"zone {zone}: {slots_f[-1]:.0f} points of {step_s} s from the first row to this "
            f"one; at most {MAX_TRACE_POINTS} (rows far apart in time?)",
        )  # fmt: skip
    slots = np.floor(slots_f).astype(np.int64)
    out = np.full(int(slots[-1]) + 1, np.nan)
    flags = np.zeros(len(out), dtype=np.bool_)
    out[slots] = values  # later rows overwrite earlier duplicates
    flags[slots] = est
    empty = ~np.isfinite(values)
    if empty.any():
        n = int(empty.sum())
        first = int(lines[int(np.argmax(empty))])
        issues.append(DataIssue(path, zone, "empty_value", f"{n} empty intensity cells", first, n))
    covered = np.zeros(len(out), dtype=np.bool_)
    covered[slots] = True
    n_gap = int((~covered).sum())
    if n_gap:
        first = int(np.argmax(~covered))
        when = datetime.fromtimestamp(origin + first * step_s, tz=UTC).isoformat()
        issues.append(
            DataIssue(
                path, zone, "gap", f"{n_gap} missing {step_s}s points, first {when}", None, n_gap
            )
        )
    series = IntensitySeries(
        zone, datetime.fromtimestamp(origin, tz=UTC), step_s, out, flags, kind, source, None
    )
    return series, issues


def fill_gaps(series: IntensitySeries) -> tuple[IntensitySeries, int]:
    """Linearly interpolate missing points (edges: nearest), flagging them ``is_estimated``.

    Returns the filled series and how many points were filled.
    """
    values = series.values_g_per_kwh
    missing = ~np.isfinite(values)
    if not missing.any() or missing.all():
        return series, 0
    idx = np.arange(len(values))
    filled: FloatArray = values.copy()
    filled[missing] = np.interp(idx[missing], idx[~missing], values[~missing])
    flags = series.is_estimated | missing
    return series.replace(values_g_per_kwh=filled, is_estimated=flags), int(missing.sum())


def read_trace(
    path: str | Path,
    *,
    kind: SignalKind = "lifecycle",
    zones: Collection[str] | None = None,
    fill: bool = False,
) -> TraceReadResult:
    """Read a CSV (or ``.csv.gz``) trace in any of :data:`TRACE_FORMATS`.

    Args:
        path: the file.
        kind: ``lifecycle`` (LCA column, the API default) or ``direct``.
        zones: keep only these zones (case-insensitive); default all.
        fill: interpolate gaps (flagged estimated, reported) instead of leaving NaN.

    Raises:
        TraceFormatError: unreadable file, unknown header, bad value; names file, line, column.
    """
    path = Path(path)
    bad = _BadRows()
    fmt, rows, notes = _read_rows(path, kind, zones, bad)
    name = str(path)
    issues: list[DataIssue] = bad.summary(name)
    if notes["offset"]:
        issues.append(
            DataIssue(
                name,
                None,
                "non_utc_offset",
                "times with a UTC offset converted to UTC",
                None,
                notes["offset"],
            )
        )
    if notes["naive"]:
        issues.append(
            DataIssue(
                name, None, "naive_time", "times without offset taken as UTC", None, notes["naive"]
            )
        )
    if not rows:
        if bad.first is not None:
            raise bad.first
        what = f" for zones {sorted(zones)}" if zones else ""
        raise TraceFormatError(name, None, None, f"no data rows{what}")
    series: dict[str, IntensitySeries] = {}
    for zone, bucket in rows.items():
        s, found = _to_series(name, zone, bucket, kind, path.name)
        if fill:
            s, n = fill_gaps(s)
            if n:
                found.append(
                    DataIssue(
                        name, zone, "filled", f"{n} points interpolated, flagged estimated", None, n
                    )
                )
        series[zone] = s
        issues.extend(found)
    return TraceReadResult(name, fmt.name, kind, series, tuple(issues))
