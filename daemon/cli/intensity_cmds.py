"""``carbond intensity`` and ``carbond forecast backtest``.

``intensity`` shows a zone's best available intensity (live API, cache, forecast from history or
the static annual mean) with its rung, source and age, and optionally the forecast.
``forecast backtest`` scores every forecaster on a trace at 1, 6, 24 and 48 h.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.cli.context import add_common_options, number_within, settings_from
from daemon.cli.output import note, print_json, print_table, writable
from daemon.errors import UsageError
from daemon.intensity.signals import build_signal_chain
from daemon.reports.render import counted
from daemon.settings.sections import MAX_HORIZON_S, MAX_INTERVAL_S
from forecasts import (
    BACKTEST_HORIZONS_H,
    FORECASTERS,
    ForecastsError,
    IntensityReading,
    NoSignalError,
    SignalChain,
    UnknownZoneError,
    ZoneForecast,
    backtest,
    make_forecaster,
    read_trace,
)

__all__ = ["register"]


def _when(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from e
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


_HOURS = number_within(0.01, MAX_HORIZON_S / 3600)  # a forecast horizon, as [intensity] horizon_s
_HOURS_RANGE = f"0.01 to {MAX_HORIZON_S / 3600:g}"


def register(subparsers: Any) -> None:
    """Add ``intensity`` and ``forecast`` to the ``carbond`` parser."""
    p = subparsers.add_parser(
        "intensity",
        help="show a zone's carbon intensity and forecast",
        description="Show a zone's grid carbon intensity now (gCO2e/kWh) from the fallback "
        "chain (live API, cache, forecast from history, static annual average), with its rung "
        "and age, and with --forecast-hours the forecast ahead with its p90 error.",
    )
    p.add_argument("--zone", required=True, help="Electricity Maps zone key, e.g. CA-QC")
    p.add_argument(
        "--forecast-hours",
        type=_HOURS,
        metavar="H",
        help=f"also print the next H hours, {_HOURS_RANGE}",
    )
    p.add_argument(
        "--step-minutes",
        type=number_within(1, MAX_INTERVAL_S / 60),  # as [intensity] step_s
        default=60.0,
        metavar="MIN",
        help="forecast step in minutes, 1 to 1440 (default 60)",
    )
    p.add_argument(
        "--trace", type=Path, metavar="FILE", help="CSV trace used as history for the zone"
    )
    p.add_argument(
        "--at", type=_when, metavar="TIME", help="evaluate at this ISO 8601 time, not now"
    )
    p.add_argument("--offline", action="store_true", help="do not call the live API")
    p.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="intensity cache (default: signals.cache_dir or <state_dir>/cache/intensity)",
    )
    add_common_options(p)
    p.set_defaults(func=_intensity)

    f = subparsers.add_parser(
        "forecast",
        help="forecaster tools",
        description="Forecaster tools: backtest scores them on a CSV trace.",
    )
    fsub = f.add_subparsers(dest="forecast_command", metavar="SUBCOMMAND", required=True)
    b = fsub.add_parser(
        "backtest",
        help="score forecasters on a trace by horizon",
        description="Issue a forecast every --every-hours over the trace from only the data "
        "before it, and print each forecaster's MAE (gCO2e/kWh) and MAPE (%) by hours ahead, and "
        "the one chosen (lowest MAE at 24 h, as the daemon chooses, or at the longest horizon "
        "scored below it).",
    )
    b.add_argument(
        "--trace", type=Path, required=True, metavar="FILE", help="CSV trace (any format)"
    )
    b.add_argument("--zone", required=True, help="zone in the trace")
    b.add_argument(
        "--horizon-hours",
        type=_HOURS,
        default=48.0,
        metavar="H",
        help=f"hours ahead to score, {_HOURS_RANGE} (default 48)",
    )
    b.add_argument(
        "--every-hours",
        type=number_within(0.25, 8760),
        default=6.0,
        metavar="H",
        help="hours between forecasts issued, 0.25 to 8760 (default 6)",
    )
    b.add_argument(
        "--forecasters",
        metavar="NAMES",
        default=",".join(FORECASTERS),
        help=f"comma-separated names (default all: {', '.join(FORECASTERS)})",
    )
    b.add_argument("--kind", choices=["lifecycle", "direct"], default="lifecycle",
                   help="the trace's lifecycle or direct (operational) intensity (default "
                   "lifecycle)")  # fmt: skip
    b.add_argument("--plot", type=Path, metavar="PNG", help="also draw MAPE by lead time")
    b.add_argument("--json", action="store_true", help="machine-readable output")
    b.set_defaults(func=_backtest)
    fsub.help = f"one of: {', '.join(fsub.choices)} (carbond forecast SUBCOMMAND --help says more)"


def _reading_dict(r: IntensityReading) -> dict[str, Any]:
    return {
        "zone": r.zone,
        "intensity_g_per_kwh": round(r.intensity_g_per_kwh, 3),
        "datetime": r.at.isoformat(),
        "source": r.source,
        "stale": r.stale,
        "age_s": round(r.age_s, 1),
        "rung": r.rung,
        "kind": r.kind,
        "is_estimated": r.is_estimated,
        "problem": r.problem,
    }


def _forecast_dict(f: ZoneForecast) -> dict[str, Any]:
    s = f.series
    return {
        "forecaster": f.forecaster,
        "rung": f.rung,
        "source": f.source,
        "age_s": round(f.age_s, 1),
        "mape_24h_pct": None if f.mape_24h_pct is None else round(f.mape_24h_pct, 2),
        "error_note": f.error_note,
        "step_s": s.step_s,
        "points": [
            {
                "datetime": t.isoformat(),
                "intensity_g_per_kwh": round(float(v), 3),
                "abs_error_p90_g_per_kwh": round(float(e), 3),
            }
            for t, v, e in zip(
                s.times(), s.values_g_per_kwh, f.abs_error_p90_g_per_kwh, strict=True
            )
        ],
    }


def _intensity(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    zone = args.zone.strip()
    if not zone:
        raise UsageError("--zone must not be empty")
    traces = None
    if args.trace is not None:
        result = read_trace(
            args.trace, zones=[zone], kind=settings.electricitymaps.emission_factor_type
        )
        traces = {zone: result.zone(zone)}
        for issue in result.issues:
            note(str(issue))
    now = args.at or datetime.now(UTC)
    with build_signal_chain(
        settings, cache_dir=args.cache_dir, traces=traces, offline=args.offline
    ) as wiring:
        chain = wiring.chain
        if wiring.client is not None:
            chain.refresh([zone], now)
        reading = _current(chain, zone, now, live=wiring.client is not None)
        forecast = None
        if args.forecast_hours:
            forecast = chain.forecast(
                zone, now, round(args.forecast_hours * 3600), round(args.step_minutes * 60)
            )
    payload = _reading_dict(reading)
    if forecast is not None:
        payload["forecast"] = _forecast_dict(forecast)
    if args.json:
        print_json(payload)
        return 0
    columns = ["zone", "intensity_g_per_kwh", "datetime", "source", "stale", "age_s", "rung"]
    print_table(  # the zone as the reading names it: `--zone ca-qc` titled "ca-qc" over CA-QC
        f"{reading.zone} carbon intensity ({reading.kind})",
        columns,
        [[payload[c] for c in columns]],
    )
    # notes go to stderr, as the trace's own: stdout holds the table (until 2026-12-07 these
    # two were printed into it as `note: ...`)
    if reading.problem:
        note(reading.problem)
    if traces and reading.rung == "static":  # --at before the trace said "the trace ends ..."
        covers = f"{traces[zone].start.isoformat()} to {traces[zone].end.isoformat()}"
        note(f"the trace covers {covers}; use --at TIME to read a time it covers")
    if forecast is not None:
        fc = payload["forecast"]
        # a forecast no backtest scored (static: 50 % of the value; too little history: 25 %)
        # was titled "p90 error from backtest" too
        how = "from backtest" if fc["mape_24h_pct"] is not None else "assumed, not backtested"
        if fc["error_note"]:  # one issue gave its own error as the p90: 0.0 on a flat history
            how = f"assumed: {fc['error_note']}"
        title = f"forecast: {fc['forecaster']} ({fc['rung']}, p90 error {how})"
        rows = [
            [p["datetime"], p["intensity_g_per_kwh"], p["abs_error_p90_g_per_kwh"]]
            for p in fc["points"]
        ]
        print_table(title, ["datetime", "intensity_g_per_kwh", "abs_error_p90_g_per_kwh"], rows)
    return 0


def _current(chain: SignalChain, zone: str, now: datetime, *, live: bool) -> IntensityReading:
    """The zone's reading; a zone that nothing here knows (no live API to ask, not in the
    static table) is bad input (exit 2), not a failure of the signal chain (exit 1)."""
    try:
        return chain.current(zone, now)
    except NoSignalError as exc:
        if not live and isinstance(exc.__cause__, UnknownZoneError):
            raise UsageError(str(exc)) from exc
        raise


def _spinner(message: str, quiet: bool) -> AbstractContextManager[object]:
    """A rich status spinner on a TTY (not with --json or when piped)."""
    if quiet or not sys.stdout.isatty():
        return nullcontext()
    from rich.console import Console

    return Console().status(message)


def _check_plot(path: Path) -> None:
    """``--plot`` before the backtest (seconds a zone-year), as ``carbond tune`` checks its
    own: until 2026-12-07 a ``.txt`` was a traceback after the backtest, a folder ``F`` wrote
    ``F.png`` beside it and a missing one ``[Errno 2]``. Its folder is made now if missing,
    and the file checked as ``report --plot`` checks its own (``/proc/x.png`` failed only
    after the backtest: :func:`writable` creates a file there now)."""
    from daemon.reports.plots import image_format

    image_format(path)
    if path.is_dir():
        raise UsageError(f"--plot {path}: a folder, not a file to draw in")
    if not path.parent.is_dir():
        writable(path.parent, make=True)
    writable(path)


def _backtest(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.forecasters.split(",") if n.strip()]
    try:
        forecasters = [make_forecaster(n) for n in names]
    except Exception as e:
        raise UsageError(str(e)) from e
    if not forecasters:
        raise UsageError("--forecasters names none")
    if args.plot is not None:
        _check_plot(args.plot)
    result = read_trace(args.trace, zones=[args.zone], kind=args.kind)
    series = result.zone(args.zone)
    horizon_s = round(args.horizon_hours * 3600)
    horizons = [h for h in BACKTEST_HORIZONS_H if h <= args.horizon_hours]
    with _spinner(
        f"backtesting {counted(len(forecasters), 'forecaster')} on {series.zone}", args.json
    ):
        try:
            scored = backtest(
                series,
                forecasters,
                horizon_s=horizon_s,
                issue_every_s=round(args.every_hours * 3600),
                horizons_h=horizons,
            )
        except ForecastsError as exc:  # a trace too short for the horizon: bad input (was 1)
            raise UsageError(
                f"{args.trace}: {exc}; give a longer trace or a shorter --horizon-hours"
            ) from exc
    if args.plot is not None:
        from daemon.reports.forecasts import plot_backtest

        plot_backtest(scored, args.plot)
    if args.json:
        payload = scored.to_dict()
        payload["trace"] = str(args.trace)
        payload["data_issues"] = [str(i) for i in result.issues]
        print_json(payload)
        return 0
    for issue in result.issues:
        note(str(issue))
    columns = ["forecaster", *(f"MAE {h}h" for h in horizons), *(f"MAPE% {h}h" for h in horizons)]
    rows = []
    for f in forecasters:
        maes = [scored.score(f.name, h).mae_g_per_kwh for h in horizons]
        mapes = [scored.score(f.name, h).mape_pct for h in horizons]
        mark = " *" if f.name == scored.chosen else ""
        rows.append([f.name + mark, *maes, *mapes])
    title = (
        f"{scored.zone} backtest, {counted(scored.n_issues, 'issue')} every "
        f"{scored.issue_every_s / 3600:g} h ({scored.kind}, MAE gCO2e/kWh)"
    )
    print_table(title, columns, rows)
    at = scored.chosen_at_h
    print(f"chosen: {scored.chosen} " + ("(no horizon scored: the first named)" if at is None
                                         else f"(lowest MAE at {at:g} h)"))  # fmt: skip
    return 0
