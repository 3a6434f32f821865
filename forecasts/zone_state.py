"""Per-zone state of the fallback chain: what was fetched, the history, the forecaster scores.

:meth:`ZoneState.history_forecast` is the ``history-forecast`` rung: the forecaster with the
best recent backtest (re-scored every ``rescore_every_s``; the default one while the backtest
has fewer than :data:`MIN_SCORED_ISSUES` issues) run on the history before ``now``, with a
p90 error per point from that backtest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np

from forecasts.backtest import BacktestResult, score_recent
from forecasts.electricitymaps import ProviderReading
from forecasts.errors import ForecastsError
from forecasts.forecasters import VectorForecaster
from forecasts.readings import ZoneForecast, history_ends
from forecasts.series import FloatArray, IntensitySeries

__all__ = [
    "DEFAULT_FORECASTER",
    "MIN_SCORED_ISSUES",
    "UNSCORED_REL_ERROR",
    "ZoneState",
    "floor_hour",
]

UNSCORED_REL_ERROR: Final = 0.25  # p90 error assumed before a forecaster could be scored
# Backtest issues a p90 error needs: a 90th percentile of fewer errors is their largest, or
# less (of one issue, that one error: 0.0 on a flat history, claimed as a certain forecast).
MIN_SCORED_ISSUES: Final = 10
DEFAULT_FORECASTER: Final = "seasonal-24h"


def floor_hour(t: datetime) -> datetime:
    """``t`` in UTC, truncated to the hour."""
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(slots=True)
class ZoneState:
    """Everything the chain knows about one zone (mutable; owned by one :class:`SignalChain`)."""

    live: ProviderReading | None = None
    live_at: datetime | None = None
    provider_forecast: IntensitySeries | None = None
    history: IntensitySeries | None = None
    loaded: bool = False
    score: BacktestResult | None = None
    scored_at: datetime | None = None
    forecast_retry_at: datetime | None = None
    forecast_failed: bool = False  # the last /forecast refetch failed (the stored one is old)
    paused_until: datetime | None = None  # a 429, or latest down: no provider call until then
    paused_why: str = ""  # what paused it, for the problem of each zone not called
    problems: list[str] = field(default_factory=list)

    def merge_history(self, series: IntensitySeries) -> None:
        """Merge ``series`` into the history (newer wins); a misfit replaces it, noted."""
        try:
            self.history = series if self.history is None else self.history.merge(series)
        except ForecastsError as e:
            self.problems.append(f"history: {e}")
            self.history = series

    def known_history(self, now: datetime) -> tuple[IntensitySeries, datetime, float] | None:
        """The history before the hour of ``now``, the start of its newest valid point, and
        how long before that hour it ends, in seconds (the gap a history forecast bridges);
        None without a valid point before then. The one rule for :meth:`history_forecast`
        and :meth:`forecasts.SignalChain.stale_history` (until 2026-12-08 the latter measured
        from ``now`` itself and called a history stale up to an hour before the forecast
        stopped using it)."""
        history = self.history
        issue = floor_hour(now)
        known = history.slice(history.start, issue) if history is not None else None
        last = known.last_valid() if known is not None else None
        if known is None or last is None:
            return None
        return known, last[0], (issue - known.end).total_seconds()

    def history_forecast(
        self,
        forecasters: Sequence[VectorForecaster],
        now: datetime,
        horizon_s: int,
        step_s: int,
        *,
        max_gap_s: float,
        rescore_every_s: float,
    ) -> ZoneForecast:
        """Forecast from the hour containing ``now`` with the best-scoring forecaster.

        Raises:
            ForecastsError: no history before ``now``, or it ends more than ``max_gap_s`` ago.
        """
        found = self.known_history(now)
        if found is None:
            raise ForecastsError("no history before now")
        known, newest_at, gap_s = found
        issue = floor_hour(now)
        if gap_s > max_gap_s:
            raise ForecastsError(history_ends(gap_s))
        score = self._rescore(forecasters, known, now, rescore_every_s)
        chosen = _pick(forecasters, self.chosen() or DEFAULT_FORECASTER)
        raw = chosen.forecast(known, known.end, int(gap_s) + horizon_s, known.step_s)
        series = raw.slice(issue, issue + timedelta(seconds=horizon_s))
        if step_s != series.step_s:
            series = series.resample(step_s)
        error, mape, note = _uncertainty(score, chosen.name, series, gap_s)
        age_s = max(0.0, (now - (newest_at + timedelta(seconds=known.step_s))).total_seconds())
        return ZoneForecast(
            series=series,
            forecaster=chosen.name,
            rung="history-forecast",
            age_s=age_s,
            source=series.source,
            abs_error_p90_g_per_kwh=error,
            mape_24h_pct=mape,
            problem="; ".join(self.problems) or None,
            error_note=note,
        )

    def chosen(self) -> str | None:
        """The forecaster the last scoring chose (None before one scored): the default while
        it had fewer than :data:`MIN_SCORED_ISSUES` issues, as a pick from so few is one from
        noise (until 2026-12-07 the best on one issue, under two weeks of history)."""
        score = self.score
        if score is None:
            return None
        return score.chosen if score.n_issues >= MIN_SCORED_ISSUES else DEFAULT_FORECASTER

    def _rescore(
        self,
        forecasters: Sequence[VectorForecaster],
        known: IntensitySeries,
        now: datetime,
        rescore_every_s: float,
    ) -> BacktestResult | None:
        due = self.scored_at is None or (now - self.scored_at).total_seconds() >= rescore_every_s
        if due:
            try:
                self.score = score_recent(known, forecasters, known.end)
            except ForecastsError:
                self.score = None  # too little history yet: the default forecaster is used
            self.scored_at = now
        return self.score


def _pick(forecasters: Sequence[VectorForecaster], name: str) -> VectorForecaster:
    return next((f for f in forecasters if f.name == name), forecasters[0])


def _uncertainty(
    score: BacktestResult | None, name: str, series: IntensitySeries, gap_s: float
) -> tuple[FloatArray, float | None, str | None]:
    """Per-point p90 absolute error (by lead time) and the 24 h MAPE of ``name``, and why the
    error is assumed (:data:`UNSCORED_REL_ERROR` of each value) rather than backtested, where
    a backtest ran (None: it is the backtest's, or none ran: no history to score). Fewer than
    :data:`MIN_SCORED_ISSUES` issues are not enough history for either, nor to pick the
    forecaster (the default is used): until 2026-12-07 one issue (under two weeks of history)
    gave that issue's error as the p90 and the MAPE, 0.0 on a flat history, and chose the
    forecaster best on it."""
    if score is None:
        return series.values_g_per_kwh * UNSCORED_REL_ERROR, None, None
    if score.n_issues < MIN_SCORED_ISSUES:
        issues = f"{score.n_issues} backtest issue{'s' if score.n_issues != 1 else ''}"
        note = (f"not enough history ({issues}, {MIN_SCORED_ISSUES} needed): the default "
                "forecaster, none picked from so few")  # fmt: skip
        return series.values_g_per_kwh * UNSCORED_REL_ERROR, None, note
    if name not in score.abs_error_p90_g_per_kwh:
        return series.values_g_per_kwh * UNSCORED_REL_ERROR, None, None
    p90 = score.abs_error_p90_g_per_kwh[name]
    ends_s = (np.arange(len(series)) + 1) * series.step_s + gap_s
    lead = np.clip(np.ceil(ends_s / score.step_s).astype(int) - 1, 0, len(p90) - 1)
    at_24h = [s.mape_pct for s in score.scores if s.forecaster == name and s.horizon_h == 24]
    # a lead time the backtest could not score (its targets all missing) has an unknown
    # error, not none: it gets the unscored guess
    unscored = series.values_g_per_kwh * UNSCORED_REL_ERROR
    error = np.where(np.isfinite(p90[lead]), p90[lead], unscored)
    return np.nan_to_num(error, nan=0.0), (at_24h[0] if at_24h else None), None
