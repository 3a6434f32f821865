"""Honest backtests of forecasters, and forecasts "as of" any time of a trace (for replay).

A backtest issues forecasts at regular times over a series; each forecast sees only the points
that start before its issue time (the forecasters index nothing at or after the issue point).
Errors are scored against the realised values by lead time: MAE in gCO2e/kWh and MAPE in %,
at the horizons 1, 6, 24 and 48 h by default. The forecaster carbond chooses is the one with the
lowest MAE at 24 h. Per-lead absolute-error quantiles give planners a pessimistic bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import numpy as np

from forecasts.errors import ForecastsError
from forecasts.forecasters import VectorForecaster, filled_history, forecast_series
from forecasts.series import FloatArray, IntensitySeries

__all__ = [
    "BACKTEST_HORIZONS_H",
    "BacktestResult",
    "HistoricalForecasts",
    "HorizonScore",
    "backtest",
    "score_recent",
]

BACKTEST_HORIZONS_H: Final = (1, 6, 24, 48)
CHOOSE_AT_H: Final = 24
ERROR_QUANTILE: Final = 0.9


@dataclass(frozen=True, slots=True)
class HorizonScore:
    """Errors of one forecaster at one lead time (the point ending ``horizon_h`` after issue)."""

    forecaster: str
    horizon_h: float
    mae_g_per_kwh: float
    mape_pct: float
    n: int


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Scores of every forecaster on one zone, and the chosen one (lowest MAE at 24 h, or at
    the longest horizon scored below it: ``chosen_at_h``; None when none was scored).

    ``abs_error_p90_g_per_kwh[name]`` is, per lead step, the 90th percentile of absolute error;
    ``mape_by_lead_pct[name]`` the MAPE per lead step.
    """

    zone: str
    kind: str
    step_s: int
    issue_every_s: int
    n_issues: int
    first_issue: datetime | None
    last_issue: datetime | None
    scores: tuple[HorizonScore, ...]
    chosen: str
    chosen_at_h: float | None = None
    abs_error_p90_g_per_kwh: Mapping[str, FloatArray] = field(default_factory=dict)
    mape_by_lead_pct: Mapping[str, FloatArray] = field(default_factory=dict)

    def score(self, forecaster: str, horizon_h: float) -> HorizonScore:
        """The score of ``forecaster`` at ``horizon_h``.

        Raises:
            ForecastsError: not scored.
        """
        for s in self.scores:
            if s.forecaster == forecaster and s.horizon_h == horizon_h:
                return s
        raise ForecastsError(f"{self.zone}: no score for {forecaster} at {horizon_h} h")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (stable snake_case keys)."""
        return {
            "zone": self.zone,
            "kind": self.kind,
            "step_s": self.step_s,
            "issue_every_s": self.issue_every_s,
            "n_issues": self.n_issues,
            "first_issue": self.first_issue.isoformat() if self.first_issue else None,
            "last_issue": self.last_issue.isoformat() if self.last_issue else None,
            "chosen": self.chosen,
            "chosen_at_h": self.chosen_at_h,
            "scores": [
                {
                    "forecaster": s.forecaster,
                    "horizon_h": s.horizon_h,
                    "mae_g_per_kwh": round(s.mae_g_per_kwh, 3),
                    "mape_pct": round(s.mape_pct, 3),
                    "n": s.n,
                }
                for s in self.scores
            ],
        }


def _lead_errors(
    forecaster: VectorForecaster,
    *,
    y: FloatArray,
    actual: FloatArray,
    issues: np.ndarray,
    n_leads: int,
    step_s: int,
) -> tuple[FloatArray, FloatArray]:
    predicted = forecaster.forecast_many(y, issues, n_leads, step_s)
    target_idx = issues[:, None] + np.arange(n_leads)[None, :]
    truth = actual[target_idx]
    abs_err = np.abs(predicted - truth)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(truth > 0, abs_err / truth * 100.0, np.nan)
    return abs_err, pct


def backtest(
    series: IntensitySeries,
    forecasters: Sequence[VectorForecaster],
    *,
    horizon_s: int = 48 * 3600,
    issue_every_s: int = 6 * 3600,
    horizons_h: Sequence[float] = BACKTEST_HORIZONS_H,
    warmup_s: int = 8 * 86_400,
    issue_from: datetime | None = None,
    issue_until: datetime | None = None,
) -> BacktestResult:
    """Score ``forecasters`` on ``series`` by lead time.

    Issues are every ``issue_every_s`` from ``warmup_s`` after the start (or ``issue_from``)
    until the last time whose whole horizon is in the series (or ``issue_until``). Missing
    points are carried forward in the inputs and never scored as targets.

    Raises:
        ForecastsError: no forecaster, or the series is too short for one issue.
    """
    if not forecasters:
        raise ForecastsError("backtest needs at least one forecaster")
    step = series.step_s
    n_leads = math.ceil(horizon_s / step)
    every = max(1, round(issue_every_s / step))
    first = max(1, math.ceil(warmup_s / step))
    known = np.flatnonzero(np.isfinite(series.values_g_per_kwh))
    if known.size:  # before the first known point, the carried-back inputs would be its future
        first = max(first, int(known[0]) + 1)
    if issue_from is not None:
        first = max(first, series.index_of(issue_from))
    last = len(series) - n_leads
    if issue_until is not None:
        last = min(last, series.index_of(issue_until))
    issues = np.arange(first, last + 1, every, dtype=np.int64)
    if issues.size == 0:
        raise ForecastsError(
            f"{series.zone}: {len(series)} points of {step}s are too few for a "
            f"{horizon_s / 3600:g} h backtest after {warmup_s / 86_400:g} days of warm-up"
        )
    y = filled_history(series.values_g_per_kwh)
    actual = series.values_g_per_kwh
    scores: list[HorizonScore] = []
    p90: dict[str, FloatArray] = {}
    mape_lead: dict[str, FloatArray] = {}
    for forecaster in forecasters:
        abs_err, pct = _lead_errors(
            forecaster, y=y, actual=actual, issues=issues, n_leads=n_leads, step_s=step
        )
        p90[forecaster.name] = _by_lead(abs_err, lambda a: np.nanquantile(a, ERROR_QUANTILE, 0))
        mape_lead[forecaster.name] = _by_lead(pct, lambda a: np.nanmean(a, axis=0))
        for h in horizons_h:
            k = round(h * 3600 / step) - 1
            if not 0 <= k < n_leads:
                continue
            col, col_pct = abs_err[:, k], pct[:, k]
            ok = np.isfinite(col)
            scores.append(
                HorizonScore(
                    forecaster.name,
                    h,
                    float(np.mean(col[ok])) if ok.any() else math.nan,
                    float(np.nanmean(col_pct)) if np.isfinite(col_pct).any() else math.nan,
                    int(ok.sum()),
                )
            )
    chosen, chosen_at_h = _choose(scores, [f.name for f in forecasters])
    start = series.start
    return BacktestResult(
        zone=series.zone,
        kind=series.kind,
        step_s=step,
        issue_every_s=every * step,
        n_issues=int(issues.size),
        first_issue=start + timedelta(seconds=step * int(issues[0])),
        last_issue=start + timedelta(seconds=step * int(issues[-1])),
        scores=tuple(scores),
        chosen=chosen,
        chosen_at_h=chosen_at_h,
        abs_error_p90_g_per_kwh=p90,
        mape_by_lead_pct=mape_lead,
    )


def _by_lead(errors: FloatArray, stat: Callable[[FloatArray], FloatArray]) -> FloatArray:
    """``stat`` of each column (lead time) of ``errors``; NaN for a column with no finite value
    (no target scored), without numpy's "All-NaN slice" warning on stderr."""
    out = np.full(errors.shape[1], np.nan)
    scored = np.isfinite(errors).any(axis=0)
    if scored.any():
        out[scored] = stat(errors[:, scored])
    return out


def _choose(scores: Sequence[HorizonScore], names: Sequence[str]) -> tuple[str, float | None]:
    """Lowest MAE at 24 h (or the longest scored horizon below it), and that horizon; ties
    keep list order. No horizon scored: the first name, and None."""
    scored = sorted({s.horizon_h for s in scores})
    if not scored:
        return names[0], None
    at = max((h for h in scored if h <= CHOOSE_AT_H), default=scored[0])
    best = names[0]
    best_mae = math.inf
    for name in names:
        mae = next(
            (s.mae_g_per_kwh for s in scores if s.forecaster == name and s.horizon_h == at),
            math.nan,
        )
        if math.isfinite(mae) and mae < best_mae:
            best, best_mae = name, mae
    return best, at


def score_recent(
    history: IntensitySeries,
    forecasters: Sequence[VectorForecaster],
    now: datetime,
    *,
    window_s: int = 14 * 86_400,
    horizon_s: int = 48 * 3600,
    issue_every_s: int = 6 * 3600,
) -> BacktestResult:
    """Backtest on the history before ``now`` only: issues over the last ``window_s``.

    Raises:
        ForecastsError: too little history for one issue.
    """
    known = history.slice(history.start, now)
    issue_from = now - timedelta(seconds=window_s + horizon_s)
    warmup = min(8 * 86_400, max(history.step_s, len(known) * known.step_s - horizon_s - 1))
    return backtest(
        known,
        forecasters,
        horizon_s=horizon_s,
        issue_every_s=issue_every_s,
        warmup_s=warmup,
        issue_from=issue_from if issue_from > known.start else None,
    )


class HistoricalForecasts:
    """The forecast ``forecaster`` would have made at any time ``t`` of a trace (for replay).

    Each forecast uses only the trace points that start before its own issue time. Forecasts
    are memoised per (issue point, horizon) and computed in vectorised batches: :meth:`at`
    computes the next day of hourly issues at once, :meth:`prefetch` any set of times.
    """

    def __init__(self, trace: IntensitySeries, forecaster: VectorForecaster) -> None:
        self.trace = trace
        self.forecaster = forecaster
        self._y = filled_history(trace.values_g_per_kwh)
        self._first_known = int(np.argmax(np.isfinite(trace.values_g_per_kwh)))
        self._memo: dict[tuple[int, int], FloatArray] = {}

    def _issue_index(self, t: datetime) -> int:
        i = self.trace.index_of(t - timedelta(microseconds=1)) + 1
        if i < 1:
            raise ForecastsError(
                f"{self.trace.zone}: no trace before {t.isoformat()} "
                f"(trace starts {self.trace.start.isoformat()})"
            )
        if i <= self._first_known:  # its inputs would be carried back from after ``t``
            known = self.trace.start + timedelta(seconds=self.trace.step_s * self._first_known)
            raise ForecastsError(
                f"{self.trace.zone}: no known intensity before {t.isoformat()} "
                f"(the first is at {known.isoformat()})"
            )
        return min(i, len(self.trace))

    def prefetch(self, times: Sequence[datetime], horizon_s: int) -> None:
        """Compute the forecasts for all ``times`` at once (same results as :meth:`at`).

        Raises:
            ForecastsError: a time is not after the trace's first known point.
        """
        self._prefetch_indices({self._issue_index(t) for t in times}, horizon_s)

    def _prefetch_indices(self, indices: set[int], horizon_s: int) -> None:
        n_leads = math.ceil(horizon_s / self.trace.step_s)
        wanted = sorted(i for i in indices if (i, n_leads) not in self._memo)
        if not wanted:
            return
        issues = np.array(wanted, dtype=np.int64)
        y = self._y[: int(issues.max())]
        rows = self.forecaster.forecast_many(y, issues, n_leads, self.trace.step_s)
        for i, row in zip(wanted, rows, strict=True):
            self._memo[(i, n_leads)] = row

    def at(self, t: datetime, horizon_s: int, step_s: int) -> IntensitySeries:
        """Forecast from the first trace point starting at or after ``t``, over ``horizon_s``.

        Raises:
            ForecastsError: ``t`` is not after the trace's first known point.
        """
        trace = self.trace
        i = self._issue_index(t)
        n_leads = math.ceil(horizon_s / trace.step_s)
        if (i, n_leads) not in self._memo:
            # Replay asks hour after hour: compute the next day's issues in one batch.
            ahead = max(1, 86_400 // trace.step_s)
            self._prefetch_indices(set(range(i, min(len(trace), i + ahead) + 1)), horizon_s)
        values = self._memo[(i, n_leads)]
        return forecast_series(trace, i, values, self.forecaster.name, t, step_s)
