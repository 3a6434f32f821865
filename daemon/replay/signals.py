"""Intensity for replay: realised series for accounting, forecasts from the past for planning.

- Actuals: Electricity Maps CSV traces read by :func:`forecasts.read_trace` (lifecycle
  signal; gaps interpolated and flagged).
- Forecasts: :class:`forecasts.HistoricalForecasts` with one of the ``forecasts`` package's
  forecasters (default ``blend``): the forecast that forecaster would have made at each tick
  from the points before it only.
- Pessimistic bound (``upper_g_per_kwh``): the forecast plus, per lead time, the 90th
  percentile of the forecaster's absolute error in a backtest over the 14 days before the
  replay starts (:func:`forecasts.score_recent`), so the planner can hedge.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt

from daemon.replay.errors import ReplayInputError
from forecasts import (
    ForecastsError,
    HistoricalForecasts,
    IntensitySeries,
    TraceFormatError,
    VectorForecaster,
    fill_gaps,
    make_forecaster,
    read_trace,
    score_recent,
)
from forecasts.trace_grid import MAX_TRACE_POINTS
from forecasts.trace_rows import DataIssue

__all__ = [
    "DEFAULT_FORECASTER",
    "Gap",
    "ReplaySignals",
    "ZoneSeries",
    "forecaster_named",
    "join_zones",
    "read_intensity",
    "refuse_gaps",
]

DEFAULT_FORECASTER = "blend"
FloatArray = npt.NDArray[np.float64]
MAX_JOIN_GAP_S = 86400  # interpolated at most: a longer straight line erases the days' cycle


@dataclass(frozen=True, slots=True)
class ZoneSeries:
    """A forecast on a grid with its pessimistic bound (a :class:`policies.ZoneIntensity`)."""

    zone: str
    start: datetime
    step_s: int
    values_g_per_kwh: FloatArray
    upper_g_per_kwh: FloatArray | None = None


@dataclass(frozen=True, slots=True)
class Gap:
    """Points missing from one file's series of a zone, more than :data:`MAX_JOIN_GAP_S` in a
    row: from ``start`` (the first missing point) to ``end`` (the next one the file has)."""

    path: Path
    zone: str
    start: datetime
    end: datetime

    def __str__(self) -> str:
        days = (self.end - self.start).total_seconds() / 86400
        return (
            f"{self.path}: {self.zone} has no intensity from {self.start:%Y-%m-%d %H:%M} to "
            f"{self.end:%Y-%m-%d %H:%M} ({days:,.4g} days)"
        )


def read_intensity(
    path: Path,
    notes: list[str] | None = None,
    gaps: list[Gap] | None = None,
    zones: Collection[str] | None = None,
) -> dict[str, IntensitySeries]:
    """Series per zone from an intensity CSV (any format :func:`forecasts.read_trace` knows);
    the data problems it found and worked around (bad rows skipped, gaps filled) are added to
    ``notes``, and its zones' gaps longer than :data:`MAX_JOIN_GAP_S` to ``gaps`` (before they
    are filled: a zone's ``is_estimated`` also marks the points the file itself calls estimated).
    With ``zones`` (the cluster's), the notes are those of these zones, of the file as a whole
    and its rows that could not be read (their zone may be a cluster zone mistyped): until
    2026-12-07 the normalized file's 24 empty cells of US-NW-PACW were two notes of every
    replay that read it, whatever its cluster's zones.

    Raises:
        ReplayInputError: unreadable file or bad content (the message names file and line).
    """
    try:
        read = read_trace(path)
    except TraceFormatError as exc:  # its parts kept: the same message, and file, line, column
        column = "" if exc.column is None else f"column {exc.column!r}: "
        raise ReplayInputError(
            column + exc.problem, file=exc.path, line=exc.line, field=exc.column
        ) from exc
    except ForecastsError as exc:
        raise ReplayInputError(str(exc)) from exc
    filled = {}
    issues = list(read.issues)
    for zone, series in read.series.items():
        if gaps is not None:
            gaps.extend(_long_gaps(path, series))
        filled[zone], n = fill_gaps(series)
        if n:  # as read_trace(fill=True) says it
            message = f"{n} points interpolated, flagged estimated"
            issues.append(DataIssue(read.path, zone, "filled", message, None, n))
    if notes is not None:
        wanted = None if zones is None else {zone.lower() for zone in zones}
        notes.extend(
            str(issue)
            for issue in issues
            if wanted is None
            or issue.zone is None
            or issue.kind == "bad_row"
            or issue.zone.lower() in wanted
        )
    return filled


def _long_gaps(path: Path, series: IntensitySeries) -> list[Gap]:
    """The runs of missing points of ``series`` longer than :data:`MAX_JOIN_GAP_S`."""
    missing = np.concatenate(([0], (~np.isfinite(series.values_g_per_kwh)).astype(np.int8), [0]))
    edges = np.diff(missing)
    firsts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long = (ends - firsts) * series.step_s > MAX_JOIN_GAP_S
    at = partial(_at, series)
    return [
        Gap(path, series.zone, at(a), at(b)) for a, b in zip(firsts[long], ends[long], strict=True)
    ]


def _at(series: IntensitySeries, index: int) -> datetime:
    return series.start + timedelta(seconds=series.step_s * int(index))


def refuse_gaps(
    files: Sequence[tuple[Mapping[str, IntensitySeries], Sequence[Gap]]],
    zones: Sequence[str],
    start: datetime,
    until: datetime,
) -> None:
    """Refuse a long gap of one of ``files`` (each file's series and gaps, in ``--intensity``
    order) in a zone of ``zones`` that overlaps ``[start, until)`` (the forecasts' week of
    history to the jobs' last deadline) and that no later file's series of that zone spans: it
    would be replayed as a straight line through the missing days (until 2026-12-06, named only
    in a note).

    Raises:
        ReplayInputError: such a gap, naming its file, zone and days.
    """
    wanted = {zone.upper() for zone in zones}
    for k, (_, gaps) in enumerate(files):
        for gap in gaps:
            if gap.zone.upper() not in wanted or gap.end <= start or gap.start >= until:
                continue
            if any(
                one.start <= gap.start and one.end >= gap.end
                for series, _ in files[k + 1 :]
                for zone, one in series.items()
                if zone.upper() == gap.zone.upper()
            ):
                continue  # its points replace the straight line (join_zones: the later wins)
            raise ReplayInputError(
                f"{gap}, within what the replay needs ({start:%Y-%m-%d %H:%M} to "
                f"{until:%Y-%m-%d %H:%M}; at most {MAX_JOIN_GAP_S / 86400:g} day is "
                "interpolated): give a file that has those days, or replay another span"
            )


def join_zones(
    found: Sequence[Mapping[str, IntensitySeries]], notes: list[str] | None = None
) -> dict[str, IntensitySeries]:
    """One series per zone from several files' series: a zone in two files (Electricity Maps'
    yearly files, for a replay across the new year) is joined, the later file's points winning
    where both have one and the points between them interpolated (said in ``notes``), if they
    are at most :data:`MAX_JOIN_GAP_S` apart. Until 2026-12-06 the later file replaced the
    earlier, which was silently dropped, and then a gap of any length was interpolated (a
    missing year named only in a note).

    Raises:
        ReplayInputError: a zone's files on different steps or grids, too many points from the
            first to the last, or more than a day apart (naming the two files).
    """
    parts: dict[str, list[IntensitySeries]] = {}
    for series in found:
        for zone, one in series.items():
            parts.setdefault(zone.upper(), []).append(one)
    return {key: _join(zone_parts, notes) for key, zone_parts in parts.items()}


def _join(parts: Sequence[IntensitySeries], notes: list[str] | None) -> IntensitySeries:
    """``parts`` (one zone's series in ``--intensity`` order) as one series."""
    first, zone = parts[0], parts[0].zone
    if len(parts) == 1:
        return first
    names = [part.source or "an --intensity file" for part in parts]
    points = (max(p.end for p in parts) - min(p.start for p in parts)).total_seconds()
    points /= first.step_s
    if points > MAX_TRACE_POINTS:
        raise ReplayInputError(
            f"intensity for {zone}: {', '.join(names)} are {points:,.0f} points apart "
            f"(at most {MAX_TRACE_POINTS:,})",
            field="--intensity",
            zone=zone,
        )
    joined = first
    for part, name in zip(parts[1:], names[1:], strict=True):
        try:
            joined = joined.merge(part.replace(zone=zone))
        except ForecastsError as exc:
            raise ReplayInputError(
                f"intensity for {zone} in {names[0]} and {name}: {exc}",
                field="--intensity",
                zone=zone,
            ) from exc
    between = _between(sorted(zip(parts, names, strict=True), key=lambda pair: pair[0].start))
    joined, filled = fill_gaps(joined)
    if notes is not None and filled:
        notes.append(
            f"intensity for {zone}: {filled} points between {'; '.join(between)} interpolated, "
            "flagged estimated"
        )
    return joined


def _between(ordered: Sequence[tuple[IntensitySeries, str]]) -> list[str]:
    """``a and b`` for each two of the series (sorted by start) with a gap between them.

    Raises:
        ReplayInputError: a gap longer than :data:`MAX_JOIN_GAP_S`.
    """
    reach, reach_name = ordered[0]
    gaps = []
    for part, name in ordered[1:]:
        gap_s = (part.start - reach.end).total_seconds()
        if gap_s > MAX_JOIN_GAP_S:  # a straight line through a missing year
            raise ReplayInputError(
                f"intensity for {reach.zone}: {reach_name} ends {reach.end:%Y-%m-%d %H:%M} and "
                f"{name} starts {part.start:%Y-%m-%d %H:%M}, {gap_s / 86400:,.4g} days later "
                f"(at most {MAX_JOIN_GAP_S / 86400:g} is interpolated): give the file between "
                "them, or only those the replay needs"
            )
        if gap_s > 0:
            gaps.append(f"{reach_name} and {name}")
        if part.end > reach.end:
            reach, reach_name = part, name
    return gaps


def _no_intensity(
    missing: Sequence[str], found: Iterable[str], needed_by: Mapping[str, Sequence[str]],
    cluster_file: object,
) -> str:  # fmt: skip
    """The error for the ``missing`` zones: each with the regions that need it, and the
    cluster file they are in (the file to change, or the zone to add an --intensity file
    for)."""
    zones = []
    for zone in missing:
        regions = needed_by.get(zone, ())
        named = f" ({'region' if len(regions) == 1 else 'regions'} {', '.join(regions)})"
        zones.append(zone + (named if regions else ""))
    where = f" of cluster file {cluster_file}" if cluster_file is not None else ""
    return (
        f"no intensity for zone(s) {', '.join(zones)}{where} in the --intensity files "
        f"(found: {', '.join(sorted(found)) or 'none'})"
    )


def forecaster_named(name: str) -> VectorForecaster:
    """``--forecaster``'s forecaster.

    Raises:
        ReplayInputError: no forecaster has that name (the option and the name in the message:
            until 2026-12-07 "unknown forecaster 'x'" alone, once the intensity was read).
    """
    try:
        return make_forecaster(name)
    except ForecastsError as exc:
        raise ReplayInputError(f"--forecaster {name}: {exc}", field="--forecaster") from exc


class ReplaySignals:
    """Realised intensity per zone, and the forecasts a planner could have had at any time.

    ``needed_by``: the regions that need each zone, and ``cluster_file`` the file they are in,
    for the error that names them.

    Raises (constructor):
        ReplayInputError: a zone the cluster needs is in none of the files, or the forecaster
            name is unknown.
    """

    def __init__(
        self,
        series: Sequence[Mapping[str, IntensitySeries]],
        zones: Sequence[str],
        forecaster: str = DEFAULT_FORECASTER,
        *,
        needed_by: Mapping[str, Sequence[str]] | None = None,
        cluster_file: object = None,
    ) -> None:
        merged = join_zones(series)
        missing = [z for z in zones if z.upper() not in merged]
        if missing:
            raise ReplayInputError(_no_intensity(missing, merged, needed_by or {}, cluster_file))
        make = forecaster_named(forecaster)
        self.actuals = {z: merged[z.upper()] for z in zones}
        self._forecasts = {z: HistoricalForecasts(s, make) for z, s in self.actuals.items()}
        self._forecaster = make
        self._p90: dict[str, FloatArray] = {}

    def covers(self, start: datetime, end: datetime, until: datetime | None = None) -> None:
        """Check every zone covers ``[start - 7 days, end]``, and up to ``until`` (the jobs'
        last deadline: they may be held, and run, until then) where that is later, and score
        its forecaster on the history before ``start`` (for the pessimistic bound).

        Raises:
            ReplayInputError: a zone's trace is too short.
        """
        need = end if until is None else max(end, until)
        # past the trace's end, runs were accounted at its last hour's intensity and planning
        # logged "intensity_refresh_failed" every hour of every zone
        why = (
            f" (the jobs' last deadline; the span ends {end:%Y-%m-%d %H:%M})" if need > end else ""
        )
        for zone, s in self.actuals.items():
            if s.start > start - timedelta(days=7) or s.end < need:
                raise ReplayInputError(
                    f"intensity for {zone} covers {s.start:%Y-%m-%d %H:%M} to "
                    f"{s.end:%Y-%m-%d %H:%M}; the replay needs a week before {start:%Y-%m-%d} "
                    f"and up to {need:%Y-%m-%d %H:%M}{why}",
                    field="--intensity",
                    zone=zone,
                )
            try:
                scores = score_recent(s, [self._forecaster], start)
            except ForecastsError as exc:
                raise ReplayInputError(f"{zone}: {exc}", zone=zone) from exc
            self._p90[zone] = np.asarray(
                scores.abs_error_p90_g_per_kwh.get(self._forecaster.name, np.zeros(1))
            )

    def actual(self, zone: str) -> IntensitySeries:
        """The realised series of ``zone``."""
        return self.actuals[zone]

    def forecast(self, zone: str, now: datetime, horizon_s: int) -> ZoneSeries:
        """The forecast available at ``now``, over ``horizon_s``, with its pessimistic bound."""
        try:
            fc = self._forecasts[zone].at(now, horizon_s, self.actuals[zone].step_s)
        except ForecastsError as exc:
            raise ReplayInputError(f"{zone}: {exc}", zone=zone) from exc
        values = np.asarray(fc.values_g_per_kwh, dtype=np.float64)
        upper = None
        p90 = self._p90.get(zone)
        if p90 is not None and len(p90):
            spread = np.resize(p90, len(values))
            spread[len(p90) :] = p90[-1]
            upper = values + spread
        return ZoneSeries(zone, fc.start, fc.step_s, values, upper)
