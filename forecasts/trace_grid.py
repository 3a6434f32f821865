"""A zone's rows as a series on a regular grid: the step, the rows sorted, duplicates and times
off the grid, empty values and gaps each reported as a :class:`DataIssue`; and gaps filled when
asked (see :mod:`forecasts.traces`)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Final

import numpy as np

from forecasts.errors import TraceFormatError
from forecasts.series import FloatArray, IntensitySeries, SignalKind
from forecasts.trace_rows import DataIssue, TraceRows

__all__ = ["MAX_TRACE_POINTS", "fill_gaps", "to_series"]

MAX_TRACE_POINTS: Final = 5_000_000  # 570 years hourly, 9.5 minutely; 40 MB of float64
# A series ends a step after its last point (IntensitySeries.end): not past datetime's range.
_LAST_END_S: Final = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


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


def to_series(
    path: str, zone: str, rows: TraceRows, kind: SignalKind, source: str
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
    if origin + (int(slots[-1]) + 1) * step_s > _LAST_END_S:  # was an OverflowError at .end
        raise TraceFormatError(
            path, int(lines[-1]), None,
            f"zone {zone}: this row's {step_s} s step ends past the year 9999",
        )  # fmt: skip
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
