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

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from forecasts.errors import TraceFormatError
from forecasts.series import IntensitySeries, SignalKind
from forecasts.trace_grid import fill_gaps, to_series
from forecasts.trace_rows import BadRows, DataIssue, TimeNotes, read_rows

__all__ = ["TraceReadResult", "read_trace"]


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


_TIME_NOTES = {
    "offset": ("non_utc_offset", "with a UTC offset converted to UTC"),
    "naive": ("naive_time", "without offset taken as UTC"),
}


def _time_issues(name: str, notes: TimeNotes) -> list[DataIssue]:
    """One issue per zone and note, at its first line, counting the lines (until 2026-12-07
    one per file with neither zone nor line: ``dst.csv: -: non_utc_offset: ...``)."""
    issues = []
    for (zone, note), (first, n) in notes.items():
        kind, what = _TIME_NOTES[note]
        times = "time" if n == 1 else "times"
        issues.append(DataIssue(name, zone, kind, f"{n} {times} {what}", first, n))
    return issues


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
    bad = BadRows()
    others: set[str] = set()
    fmt, rows, notes = read_rows(path, kind, zones, bad, others)
    name = str(path)
    issues: list[DataIssue] = bad.summary(name)
    issues.extend(_time_issues(name, notes))
    if not rows:
        if bad.first is not None:
            raise bad.first
        if not zones:
            raise TraceFormatError(name, None, None, "no data rows")
        # until 2026-12-07 "no data rows for zones ['XX']", not saying which zones it has
        asked = ", ".join(repr(z) for z in sorted(zones))
        has = ", ".join(sorted(others)) or "none"
        raise TraceFormatError(
            name,
            None,
            None,
            f"no rows for zone{'s' if len(zones) > 1 else ''} {asked} (has: {has})",
        )
    series: dict[str, IntensitySeries] = {}
    for zone, bucket in rows.items():
        s, found = to_series(name, zone, bucket, kind, path.name)
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
