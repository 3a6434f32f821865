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
from datetime import datetime, timedelta
from typing import Final

import numpy as np

from forecasts.cache import SeriesCache
from forecasts.errors import ForecastsError, NoSignalError
from forecasts.forecasters import FORECASTERS, VectorForecaster
from forecasts.readings import (
    HISTORY_FORECAST_FAILED,
    NO_PROVIDER,
    OFFLINE_PROBLEM,
    IntensityProvider,
    IntensityReading,
    StaleHistory,
    ZoneForecast,
)
from forecasts.refresh import (
    FORECAST_REFETCH_S,
    HOUR_S,
    OUTAGE_PAUSE_S,
    refresh_forecast,
    refresh_live,
)
from forecasts.series import IntensitySeries, SignalKind, check_same_kind
from forecasts.static import STATIC_KIND, static_annual_intensity
from forecasts.zone_state import UNSCORED_REL_ERROR, ZoneState, floor_hour

__all__ = ["STATIC_REL_ERROR", "SignalChain"]

STATIC_REL_ERROR: Final = 0.5  # rough p90 error of an annual mean against hourly values


def _canonical(zone: str) -> str:
    """Zone keys are upper case (``ca-qc`` is ``CA-QC``)."""
    return zone.strip().upper()


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
        outage_pause_s: no provider call this long after ``latest`` could not reach it
            (default ``OUTAGE_PAUSE_S``, 60 s; the daemon passes at most its refresh
            interval, so its next refresh notices a recovery).
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
        outage_pause_s: float = OUTAGE_PAUSE_S,
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
        self.outage_pause_s = outage_pause_s
        self._zones: dict[str, ZoneState] = {}
        self._paused_until: datetime | None = None  # no provider call until then (a 429, down)
        self._paused_why = ""  # why: "rate limited (HTTP 429)", or latest's failure

    # -- state ---------------------------------------------------------------------------
    def _state(self, zone: str) -> ZoneState:
        key = _canonical(zone)
        state = self._zones.setdefault(key, ZoneState())
        if not state.loaded:
            state.loaded = True
            history = self._traces.get(key)
            if self._cache is not None:
                try:  # each file on its own: a corrupt history keeps the stored forecast
                    cached = self._cache.load(key, self.kind)
                    if cached is not None:
                        history = cached if history is None else history.merge(cached)
                except ForecastsError as e:
                    state.problems.append(f"cache: {e}")
                try:
                    state.provider_forecast = self._cache.load_forecast(key, self.kind)
                except ForecastsError as e:
                    state.problems.append(f"cache: {e}")
            state.history = history
        return state

    def problems(self, zone: str) -> tuple[str, ...]:
        """What went wrong for ``zone`` in the last refresh (for logs and ``doctor``)."""
        return tuple(self._state(zone).problems)

    def stale_history(self, zone: str, now: datetime) -> StaleHistory | None:
        """``zone``'s history (cache or trace) when it ended more than ``max_history_gap_s``
        before the hour of ``now`` (too old to forecast from, by the history forecast's own
        rule, :meth:`ZoneState.known_history`: the chain falls to the static rung), else
        None, also when there is no history at all. Until 2026-12-08 a tokenless daemon on a
        months-old cache planned on the static value with nothing but the rung metric saying
        so."""
        found = self._state(zone).known_history(now)  # as the history forecast judges it
        if found is None or found[2] <= self.max_history_gap_s:
            return None
        return StaleHistory(_canonical(zone), found[1], found[2], self.max_history_gap_s)

    # -- network -------------------------------------------------------------------------
    def refresh(self, zones: Iterable[str], now: datetime) -> dict[str, str]:
        """Fetch from the provider and write through to the cache; the only network I/O.

        Per zone: ``latest`` every time; the last 24 h only when the history has a hole of
        more than ``HISTORY_REFETCH_S`` before now; the provider's forecast when the stored one
        is older than ``FORECAST_REFETCH_S`` (and, after a 401/403/404 there, not again for
        ``FORECAST_BACKOFF_S``: :mod:`forecasts.refresh`); after a 429, no call for any zone
        until its ``Retry-After`` is over (at most an hour), nor for ``outage_pause_s`` after
        ``latest`` could not reach the provider (5xx, timeout, refused, 401). Never raises for
        a provider failure: the outcome per zone is ``"ok"`` or the messages of the calls that
        failed, joined with ``"; "`` (also in :meth:`problems`, with the calls deliberately not
        made).
        """
        outcome: dict[str, str] = {}
        for zone in map(_canonical, zones):
            state = self._state(zone)
            state.problems = []
            if self._provider is None:
                outcome[zone] = NO_PROVIDER
                continue
            if self._paused_until is not None and now < self._paused_until:
                until = self._paused_until.isoformat()
                state.problems.append(f"provider: {self._paused_why}: not called until {until}")
                outcome[zone] = state.problems[-1]
                continue
            live = refresh_live(
                self._provider,
                self._cache,
                zone,
                state,
                now,
                kind=self.kind,
                max_history_gap_s=self.max_history_gap_s,
                outage_pause_s=self.outage_pause_s,
            )
            failed = [] if live == "ok" else [live]
            if state.paused_until is None:  # a 429 on latest, or it is down: not /forecast
                forecast = refresh_forecast(
                    self._provider, self._cache, zone, state, now, latest_ok=live == "ok"
                )
                if forecast is not None:
                    failed.append(forecast)
            self._paused_until, self._paused_why = state.paused_until, state.paused_why
            state.paused_until = None
            outcome[zone] = "; ".join(failed) or "ok"
        return outcome

    # -- current -------------------------------------------------------------------------
    def current(self, zone: str, now: datetime) -> IntensityReading:
        """The best intensity of ``zone`` at ``now``.

        Raises:
            NoSignalError: no rung has a value (the zone is in no cache, trace or table).
        """
        zone = _canonical(zone)
        state = self._state(zone)
        why: list[str] = list(state.problems)
        live, live_at = state.live, state.live_at
        if live is not None and live_at is not None:
            age_s = (now - live_at).total_seconds()
            # the provider's "latest" may be hours or days old (a stalled feed): such a
            # value is no more "now" than a cached point of that age
            point_age_s = (now - live.at).total_seconds() - HOUR_S
            if point_age_s > self.cache_max_age_s:
                why.append(
                    f"live value is for {live.at.isoformat()}, "
                    f"{point_age_s / 3600:.1f} h before now"
                )
            elif 0 <= age_s <= self.live_max_age_s:
                return IntensityReading(
                    zone=zone,
                    intensity_g_per_kwh=live.intensity_g_per_kwh,
                    at=live.at,
                    rung="live",
                    age_s=age_s,
                    stale=False,
                    source=live.source,
                    kind=self.kind,
                    is_estimated=live.is_estimated,
                )
            else:
                why.append(f"live value {age_s:.0f}s old")
        elif self._provider is None:
            why.append(OFFLINE_PROBLEM)
        problem = "; ".join(why) or None
        history = state.history
        found = history.last_valid(before=now) if history is not None else None
        if history is not None and found is not None:
            at, value, estimated = found
            age_s = max(0.0, (now - at).total_seconds() - history.step_s)
            if age_s <= self.cache_max_age_s:
                return IntensityReading(
                    zone=zone,
                    intensity_g_per_kwh=value,
                    at=at,
                    rung="cache",
                    age_s=age_s,
                    stale=True,
                    source=history.source,
                    kind=self.kind,
                    is_estimated=estimated,
                    problem=problem,
                )
        try:
            forecast = self._history_forecast(state, now, HOUR_S, HOUR_S)
        except ForecastsError as e:
            why.append(HISTORY_FORECAST_FAILED + str(e))
            return self._static_reading(zone, now, why)
        return IntensityReading(
            zone=zone,
            intensity_g_per_kwh=float(forecast.series.values_g_per_kwh[0]),
            at=forecast.series.start,
            rung="history-forecast",
            age_s=forecast.age_s,
            stale=True,
            source=forecast.source,
            kind=self.kind,
            is_estimated=True,
            problem=problem,
        )

    def _static_reading(self, zone: str, now: datetime, why: list[str]) -> IntensityReading:
        try:
            value = static_annual_intensity(zone)
        except ForecastsError as e:
            raise NoSignalError(f"{zone}: no intensity signal: {'; '.join([*why, str(e)])}") from e
        if self.kind != STATIC_KIND:  # served all the same, labelled as what it is
            why = [*why, f"static annual values are {STATIC_KIND} averages, not {self.kind}"]
        return IntensityReading(
            zone=zone,
            intensity_g_per_kwh=value,
            at=floor_hour(now),
            rung="static",
            age_s=0.0,
            stale=True,
            source="static-annual",
            kind=STATIC_KIND,
            is_estimated=True,
            problem="; ".join(why) or None,
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
        zone = _canonical(zone)
        state = self._state(zone)
        why = list(state.problems)
        provided = state.provider_forecast
        issue = floor_hour(now)
        if provided is not None and provided.start <= issue < provided.end:
            try:
                return self._provider_forecast(state, provided, now, horizon_s, step_s, why)
            except ForecastsError as e:
                why.append(f"provider forecast: {e}")
        try:
            return self._history_forecast(state, now, horizon_s, step_s)
        except ForecastsError as e:
            why.append(HISTORY_FORECAST_FAILED + str(e))
        reading = self._static_reading(zone, now, why)
        n = math.ceil(horizon_s / step_s)
        values = np.full(n, reading.intensity_g_per_kwh)
        series = IntensitySeries(
            zone,
            issue,
            step_s,
            values,
            np.ones(n, dtype=np.bool_),
            STATIC_KIND,
            "static-annual",
            now,
        )
        return ZoneForecast(
            series=series,
            forecaster="static",
            rung="static",
            age_s=0.0,
            source="static-annual",
            abs_error_p90_g_per_kwh=values * STATIC_REL_ERROR,
            problem=reading.problem,
        )

    def _provider_forecast(
        self,
        state: ZoneState,
        provided: IntensitySeries,
        now: datetime,
        horizon_s: int,
        step_s: int,
        why: Sequence[str] = (),
    ) -> ZoneForecast:
        """The provider's forecast over the horizon, gaps filled from history when possible;
        ``live`` while the provider answers and the forecast is not overdue for a refetch
        (a refetch that failed leaves it ``cache``), with ``why`` as its problem.

        Raises:
            ForecastsError: it does not cover the horizon and there is no history to fill it.
        """
        issue = floor_hour(now)
        end = issue + timedelta(seconds=horizon_s)
        try:
            base = self._history_forecast(state, now, horizon_s, step_s)
        except ForecastsError:
            if provided.end < end:
                raise
            series = provided.slice(issue, end)
            series = series if series.step_s == step_s else series.resample(step_s)
            error = series.values_g_per_kwh * UNSCORED_REL_ERROR
            mape, note = None, None
        else:
            series = self._overlay(base.series, provided)
            error, mape = base.abs_error_p90_g_per_kwh, base.mape_24h_pct
            note = base.error_note
        fetched = provided.fetched_at or issue
        age_s = max(0.0, (now - fetched).total_seconds())
        fresh = (
            not state.forecast_failed  # a refetch that failed: until 2026-12-07 still live
            and state.live_at is not None
            and (now - state.live_at).total_seconds() <= self.live_max_age_s
            and age_s <= FORECAST_REFETCH_S + self.live_max_age_s
        )
        return ZoneForecast(
            series=series,
            forecaster="provider",
            rung="live" if fresh else "cache",
            age_s=age_s,
            source=provided.source,
            abs_error_p90_g_per_kwh=error,
            mape_24h_pct=mape,
            problem="; ".join(why) or None,
            error_note=note,
        )

    @staticmethod
    def _overlay(base: IntensitySeries, provided: IntensitySeries) -> IntensitySeries:
        own = provided if provided.step_s == base.step_s else provided.resample(base.step_s)
        merged = base.merge(own.replace(zone=base.zone, kind=base.kind))
        return merged.slice(base.start, base.end).replace(source=provided.source)

    def _history_forecast(
        self, state: ZoneState, now: datetime, horizon_s: int, step_s: int
    ) -> ZoneForecast:
        return state.history_forecast(self._forecasters, now, horizon_s, step_s,
                                      max_gap_s=self.max_history_gap_s,
                                      rescore_every_s=self.rescore_every_s)  # fmt: skip

    def chosen_forecaster(self, zone: str) -> str | None:
        """The forecaster last chosen for ``zone`` (None before the first scoring; the
        default while its backtest has too few issues: :meth:`ZoneState.chosen`)."""
        return self._state(zone).chosen()
