"""The per-zone fallback chain: live API -> cache -> forecast from history -> static -> error.

:class:`SignalChain` is the one object the daemon asks for intensity. :meth:`SignalChain.refresh`
does the network I/O (the daemon calls it every few minutes) and writes what it got through
to the cache; :meth:`~SignalChain.current` and :meth:`~SignalChain.forecast` never touch the
network and take ``now`` explicitly. Every value carries the rung it came from and its age.
No threads; nothing happens in the constructor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, Protocol

import numpy as np

from forecasts.backtest import BacktestResult, score_recent
from forecasts.cache import SeriesCache
from forecasts.electricitymaps import ProviderReading
from forecasts.errors import ForecastsError, NoSignalError, ProviderError
from forecasts.forecasters import FORECASTERS, VectorForecaster
from forecasts.series import FloatArray, IntensitySeries, SignalKind, check_same_kind
from forecasts.static import static_annual_intensity

__all__ = ["RUNGS", "IntensityProvider", "IntensityReading", "Rung", "SignalChain", "ZoneForecast"]

Rung = Literal["live", "cache", "history-forecast", "static"]
RUNGS: Final[tuple[Rung, ...]] = ("live", "cache", "history-forecast", "static")
HOUR_S: Final = 3600
STATIC_REL_ERROR: Final = 0.5  # rough p90 error of an annual mean against hourly values
UNSCORED_REL_ERROR: Final = 0.25  # p90 error assumed before a forecaster could be scored


class IntensityProvider(Protocol):
    """A live source (the Electricity Maps client, or a fake in tests)."""

    @property
    def kind(self) -> SignalKind:
        """The signal kind this source returns."""
        ...

    def latest(self, zone: str) -> ProviderReading:
        """The newest value. Raises: ProviderError."""
        ...

    def history(self, zone: str) -> IntensitySeries:
        """The last 24 h. Raises: ProviderError."""
        ...

    def forecast(self, zone: str, horizon_hours: int | None = None) -> IntensitySeries:
        """The provider's own forecast. Raises: ProviderError."""
        ...


@dataclass(frozen=True, slots=True)
class IntensityReading:
    """The intensity of a zone now, with where it came from and how old it is.

    ``at`` is the start of the period the value describes; ``age_s`` the seconds since it was
    fetched (live) or since the end of that period (cache, history); ``stale`` is true for
    every rung but a fresh live value. ``problem`` says why higher rungs were skipped.
    """

    zone: str
    intensity_g_per_kwh: float
    at: datetime
    rung: Rung
    age_s: float
    stale: bool
    source: str
    kind: SignalKind
    is_estimated: bool
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class ZoneForecast:
    """A forecast from ``now`` over the horizon, for planners.

    ``abs_error_p90_g_per_kwh`` is, per point, the 90th percentile of the absolute error this
    forecaster made at that lead time in its latest backtest (a rough fraction of the value when
    unscored); ``pessimistic_g_per_kwh()`` adds it to the values.
    """

    series: IntensitySeries
    forecaster: str
    rung: Rung
    age_s: float
    source: str
    abs_error_p90_g_per_kwh: FloatArray
    mape_24h_pct: float | None = None
    problem: str | None = None

    @property
    def zone(self) -> str:
        """The zone key."""
        return self.series.zone

    def pessimistic_g_per_kwh(self) -> FloatArray:
        """Values plus their p90 absolute error, gCO2e/kWh."""
        return self.series.values_g_per_kwh + self.abs_error_p90_g_per_kwh


@dataclass(slots=True)
class _ZoneState:
    live: ProviderReading | None = None
    live_at: datetime | None = None
    provider_forecast: IntensitySeries | None = None
    history: IntensitySeries | None = None
    loaded: bool = False
    score: BacktestResult | None = None
    scored_at: datetime | None = None
    problems: list[str] = field(default_factory=list)


def _floor_hour(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return t.replace(minute=0, second=0, microsecond=0)


class SignalChain:
    """Best available intensity signal per zone (see the module docstring).

    Args:
        provider: the live source, or None (offline: cache, history, static only).
        cache: the on-disk cache, or None.
        traces: history per zone from trace files (merged under cached data).
        kind: the one signal kind this chain serves; sources of another kind are refused.
        forecasters: candidates, scored per zone; default every built-in.
        live_max_age_s: a refreshed value stays ``live`` this long (default 15 min).
        cache_max_age_s: a cached point older than this is not used as "now" (default 3 h).
        max_history_gap_s: forecast from history ending at most this long ago (default 7 d).
        rescore_every_s: how often forecasters are re-scored per zone (default 6 h).
    """

    def __init__(
        self,
        *,
        provider: IntensityProvider | None = None,
        cache: SeriesCache | None = None,
        traces: Mapping[str, IntensitySeries] | None = None,
        kind: SignalKind = "lifecycle",
        forecasters: Sequence[VectorForecaster] | None = None,
        live_max_age_s: float = 900.0,
        cache_max_age_s: float = 3 * 3600.0,
        max_history_gap_s: float = 7 * 86_400.0,
        rescore_every_s: float = 6 * 3600.0,
    ) -> None:
        if provider is not None and provider.kind != kind:
            raise ForecastsError(f"provider serves {provider.kind} but the chain wants {kind}")
        self._provider = provider
        self._cache = cache
        self._traces = {z.upper(): s for z, s in (traces or {}).items()}
        for series in self._traces.values():
            check_same_kind(series, series.replace(kind=kind))
        self.kind = kind
        self._forecasters = list(forecasters or [make() for make in FORECASTERS.values()])
        self.live_max_age_s = live_max_age_s
        self.cache_max_age_s = cache_max_age_s
        self.max_history_gap_s = max_history_gap_s
        self.rescore_every_s = rescore_every_s
        self._zones: dict[str, _ZoneState] = {}

    # -- state ---------------------------------------------------------------------------
    def _state(self, zone: str) -> _ZoneState:
        key = zone.upper()
        state = self._zones.setdefault(key, _ZoneState())
        if not state.loaded:
            state.loaded = True
            history = self._traces.get(key)
            if self._cache is not None:
                try:
                    cached = self._cache.load(zone, self.kind)
                    if cached is not None:
                        history = cached if history is None else history.merge(cached)
                    state.provider_forecast = self._cache.load_forecast(zone, self.kind)
                except ForecastsError as e:
                    state.problems.append(f"cache: {e}")
            state.history = history
        return state

    def _remember(self, state: _ZoneState, series: IntensitySeries) -> None:
        if self._cache is not None:
            try:
                series = self._cache.store(series)
            except ForecastsError as e:
                state.problems.append(f"cache: {e}")
        try:
            state.history = series if state.history is None else state.history.merge(series)
        except ForecastsError as e:
            state.problems.append(f"history: {e}")
            state.history = series

    def problems(self, zone: str) -> tuple[str, ...]:
        """What went wrong for ``zone`` in the last refresh (for logs and ``doctor``)."""
        return tuple(self._state(zone).problems)

    # -- network -------------------------------------------------------------------------
    def refresh(self, zones: Iterable[str], now: datetime) -> dict[str, str]:
        """Fetch latest, history and provider forecast for each zone; write through to cache.

        Never raises for a provider failure: the outcome per zone is ``"ok"`` or the first
        error's message (also in :meth:`problems`).
        """
        outcome: dict[str, str] = {}
        for zone in zones:
            state = self._state(zone)
            state.problems = []
            if self._provider is None:
                outcome[zone] = "no provider configured"
                continue
            try:
                reading = self._provider.latest(zone)
                state.live, state.live_at = reading, now
                point = IntensitySeries.from_points(
                    zone,
                    [reading.at],
                    [reading.intensity_g_per_kwh],
                    [reading.is_estimated],
                    step_s=HOUR_S,
                    kind=self.kind,
                    source=reading.source,
                    fetched_at=reading.fetched_at,
                )
                self._remember(state, point)
                self._remember(state, self._provider.history(zone))
            except ProviderError as e:
                state.live = None
                state.problems.append(f"live: {e}")
            try:
                state.provider_forecast = self._provider.forecast(zone, 72)
                if self._cache is not None:
                    self._cache.store_forecast(state.provider_forecast)
            except ForecastsError as e:
                state.problems.append(f"provider forecast: {e}")
            live_problems = [p for p in state.problems if p.startswith("live")]
            outcome[zone] = live_problems[0] if live_problems else "ok"
        return outcome

    # -- current -------------------------------------------------------------------------
    def current(self, zone: str, now: datetime) -> IntensityReading:
        """The best intensity of ``zone`` at ``now``.

        Raises:
            NoSignalError: no rung has a value (the zone is in no cache, trace or table).
        """
        state = self._state(zone)
        why: list[str] = list(state.problems)
        live = state.live
        if live is not None and state.live_at is not None:
            age = (now - state.live_at).total_seconds()
            if 0 <= age <= self.live_max_age_s:
                return IntensityReading(
                    zone,
                    live.intensity_g_per_kwh,
                    live.at,
                    "live",
                    age,
                    False,
                    live.source,
                    self.kind,
                    live.is_estimated,
                )
            why.append(f"live value {age:.0f}s old")
        elif self._provider is None:
            why.append("live: no provider configured")
        problem = "; ".join(why) or None
        history = state.history
        if history is not None:
            found = history.last_valid(before=now)
            if found is not None:
                at, value, est = found
                age = max(0.0, (now - (at + timedelta(seconds=history.step_s))).total_seconds())
                if age <= self.cache_max_age_s:
                    return IntensityReading(
                        zone,
                        value,
                        at,
                        "cache",
                        age,
                        True,
                        history.source,
                        self.kind,
                        est,
                        problem,
                    )
        try:
            forecast = self._history_forecast(zone, state, now, HOUR_S, HOUR_S)
        except ForecastsError as e:
            why.append(f"history forecast: {e}")
        else:
            return IntensityReading(
                zone,
                float(forecast.series.values_g_per_kwh[0]),
                forecast.series.start,
                "history-forecast",
                forecast.age_s,
                True,
                forecast.source,
                self.kind,
                True,
                problem,
            )
        return self._static_reading(zone, now, why)

    def _static_reading(self, zone: str, now: datetime, why: list[str]) -> IntensityReading:
        try:
            value = static_annual_intensity(zone)
        except ForecastsError as e:
            raise NoSignalError(f"{zone}: no intensity signal: {'; '.join([*why, str(e)])}") from e
        return IntensityReading(
            zone,
            value,
            _floor_hour(now),
            "static",
            0.0,
            True,
            "static-annual",
            self.kind,
            True,
            "; ".join(why) or None,
        )

    # -- forecast ------------------------------------------------------------------------
    def forecast(self, zone: str, now: datetime, horizon_s: int, step_s: int) -> ZoneForecast:
        """A forecast of ``zone`` from the hour containing ``now`` over ``horizon_s``.

        Order: the provider's forecast (fresh: ``live``; from cache: ``cache``) gap-filled by
        the best-scoring forecaster; else that forecaster on the history
        (``history-forecast``); else the static annual mean, flat (``static``).

        Raises:
            NoSignalError: no rung can forecast this zone.
        """
        state = self._state(zone)
        why = list(state.problems)
        provided = state.provider_forecast
        issue = _floor_hour(now)
        if provided is not None and provided.start <= issue < provided.end:
            fresh = state.live_at is not None and (now - state.live_at).total_seconds() <= (
                self.live_max_age_s
            )
            try:
                base = self._history_forecast(zone, state, now, horizon_s, step_s)
                merged = self._overlay(base.series, provided)
                fetched = provided.fetched_at or issue
                return ZoneForecast(
                    merged,
                    "provider",
                    "live" if fresh else "cache",
                    max(0.0, (now - fetched).total_seconds()),
                    provided.source,
                    base.abs_error_p90_g_per_kwh,
                    base.mape_24h_pct,
                )
            except ForecastsError as e:
                why.append(f"provider forecast: {e}")
        try:
            return self._history_forecast(zone, state, now, horizon_s, step_s)
        except ForecastsError as e:
            why.append(f"history forecast: {e}")
        reading = self._static_reading(zone, now, why)
        n = math.ceil(horizon_s / step_s)
        values = np.full(n, reading.intensity_g_per_kwh)
        series = IntensitySeries(
            zone,
            issue,
            step_s,
            values,
            np.ones(n, dtype=np.bool_),
            self.kind,
            "static-annual",
            now,
        )
        return ZoneForecast(
            series,
            "static",
            "static",
            0.0,
            "static-annual",
            values * STATIC_REL_ERROR,
            None,
            reading.problem,
        )

    @staticmethod
    def _overlay(base: IntensitySeries, provided: IntensitySeries) -> IntensitySeries:
        own = provided if provided.step_s == base.step_s else provided.resample(base.step_s)
        merged = base.merge(own.replace(zone=base.zone, kind=base.kind))
        return merged.slice(base.start, base.end).replace(source=provided.source)

    def _history_forecast(
        self, zone: str, state: _ZoneState, now: datetime, horizon_s: int, step_s: int
    ) -> ZoneForecast:
        history = state.history
        if history is None or history.last_valid(before=now) is None:
            raise ForecastsError("no history")
        issue = _floor_hour(now)
        known = history.slice(history.start, issue)
        last = known.last_valid()
        if last is None:
            raise ForecastsError("no history before now")
        gap_s = (issue - known.end).total_seconds()
        if gap_s > self.max_history_gap_s:
            raise ForecastsError(f"history ends {gap_s / 86_400:.1f} days before now")
        score = self._score(state, known, now)
        chosen = self._pick(score)
        lead_s = int(gap_s) + horizon_s
        raw = chosen.forecast(known, known.end, lead_s, known.step_s)
        series = raw.slice(issue, issue + timedelta(seconds=horizon_s))
        if step_s != series.step_s:
            series = series.resample(step_s)
        ends_s = (np.arange(len(series)) + 1) * step_s + gap_s
        if score is not None and chosen.name in score.abs_error_p90_g_per_kwh:
            p90 = score.abs_error_p90_g_per_kwh[chosen.name]
            lead = np.clip(np.ceil(ends_s / known.step_s).astype(int) - 1, 0, len(p90) - 1)
            error = np.nan_to_num(p90[lead], nan=0.0)
            at_24h = [s for s in score.scores if s.forecaster == chosen.name and s.horizon_h == 24]
            mape = at_24h[0].mape_pct if at_24h else None
        else:
            error = series.values_g_per_kwh * UNSCORED_REL_ERROR
            mape = None
        age = max(0.0, (now - (last[0] + timedelta(seconds=known.step_s))).total_seconds())
        return ZoneForecast(
            series,
            chosen.name,
            "history-forecast",
            age,
            series.source,
            error,
            mape,
            "; ".join(state.problems) or None,
        )

    def _score(
        self, state: _ZoneState, known: IntensitySeries, now: datetime
    ) -> BacktestResult | None:
        due = state.scored_at is None or (
            (now - state.scored_at).total_seconds() >= self.rescore_every_s
        )
        if due:
            try:
                state.score = score_recent(known, self._forecasters, known.end)
            except ForecastsError:
                state.score = None
            state.scored_at = now
        return state.score

    def _pick(self, score: BacktestResult | None) -> VectorForecaster:
        name = score.chosen if score is not None else "seasonal-24h"
        for forecaster in self._forecasters:
            if forecaster.name == name:
                return forecaster
        return self._forecasters[0]

    def chosen_forecaster(self, zone: str) -> str | None:
        """The forecaster last chosen for ``zone`` (None before the first scoring)."""
        score = self._state(zone).score
        return score.chosen if score is not None else None
