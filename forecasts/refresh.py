"""One zone's fetch from the live provider, written through to the cache: the only network
I/O of the fallback chain (:meth:`forecasts.chain.SignalChain.refresh` calls it per zone).

What is fetched and when: ``latest`` every time; the last 24 h only when the history has a
hole of more than :data:`HISTORY_REFETCH_S` before now; the provider's forecast when the
stored one is older than :data:`FORECAST_REFETCH_S` (and, after a 401/403/404 there, not again
for :data:`FORECAST_BACKOFF_S`). Provider data whose newest point cannot be about now
(:func:`misdated`) is ignored. Failures are recorded in the zone's ``problems``, never raised;
a 429 sets the zone's ``paused_until`` (:data:`RATE_LIMIT_PAUSE_S`, or the ``Retry-After``
up to :data:`MAX_RATE_LIMIT_PAUSE_S`), until which the chain calls the provider no more; so
does ``latest`` failing other than for its zone (5xx, timeout, refused, 401/403: the provider
is down or refuses the token, for every zone alike) for :data:`OUTAGE_PAUSE_S` (the
chain's ``outage_pause_s``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from forecasts.cache import SeriesCache
from forecasts.errors import (
    ForecastsError,
    MalformedPayloadError,
    ProviderAuthError,
    ProviderError,
    ProviderZoneError,
    RateLimitedError,
)
from forecasts.readings import IntensityProvider
from forecasts.series import IntensitySeries, SignalKind
from forecasts.zone_state import ZoneState

__all__ = [
    "FORECAST_BACKOFF_S",
    "FORECAST_REFETCH_S",
    "HISTORY_REFETCH_S",
    "HOUR_S",
    "MAX_RATE_LIMIT_PAUSE_S",
    "OUTAGE_PAUSE_S",
    "RATE_LIMIT_PAUSE_S",
    "misdated",
    "refresh_forecast",
    "refresh_live",
    "remember",
]

HOUR_S: Final = 3600
HISTORY_REFETCH_S: Final = 2 * 3600  # fetch /history when the newest known point is older
FORECAST_REFETCH_S: Final = 3600  # provider forecasts are refreshed at most hourly
FORECAST_BACKOFF_S: Final = 6 * 3600  # after 401/403/404 on /forecast (not in the plan)
RATE_LIMIT_PAUSE_S: Final = 60.0  # no provider call this long after a 429 without Retry-After
MAX_RATE_LIMIT_PAUSE_S: Final = 3600.0  # a longer Retry-After (a far date) is not waited out
# no provider call this long after ``latest`` could not reach it: the rest of that refresh
# asks nothing more, rather than each endpoint of each zone in turn (the daemon's chain
# pauses for min(this, intervals.refresh_s): its next refresh asks again, once)
OUTAGE_PAUSE_S: Final = 60.0


def _note_pause(
    state: ZoneState,
    error: ForecastsError,
    now: datetime,
    *,
    latest: bool,
    outage_pause_s: float = OUTAGE_PAUSE_S,
) -> None:
    """Set ``state.paused_until`` (and ``paused_why``), which the chain reads: after a 429
    (after the client's retries), until its ``Retry-After`` (at most
    :data:`MAX_RATE_LIMIT_PAUSE_S`); after ``latest`` failed other than for its zone (5xx,
    timeout, refused, 401/403, a redirect elsewhere), for ``outage_pause_s``. Until
    2026-12-07 such a failure paused nothing: the chain asked ``/forecast`` and every other
    zone, each retried in turn (87 s a zone against a server that never answers). A failure
    of ``/history`` or ``/forecast`` alone pauses nothing but a 429: ``latest`` answered."""
    if isinstance(error, RateLimitedError):
        wait_s = RATE_LIMIT_PAUSE_S if error.retry_after_s is None else error.retry_after_s
        state.paused_until = now + timedelta(seconds=min(MAX_RATE_LIMIT_PAUSE_S, wait_s))
        state.paused_why = "rate limited (HTTP 429)"
    elif latest and not isinstance(error, (ProviderZoneError, MalformedPayloadError)):
        state.paused_until = now + timedelta(seconds=outage_pause_s)
        state.paused_why = str(error)


def remember(cache: SeriesCache | None, state: ZoneState, series: IntensitySeries) -> None:
    """Write ``series`` through to ``cache`` (a failure is one of the zone's problems) and
    merge it into the zone's history."""
    if cache is not None:
        try:
            series = cache.store(series)
        except ForecastsError as e:
            state.problems.append(f"cache: {e}")
    state.merge_history(series)


def refresh_live(
    provider: IntensityProvider,
    cache: SeriesCache | None,
    zone: str,
    state: ZoneState,
    now: datetime,
    *,
    kind: SignalKind,
    max_history_gap_s: float,
    outage_pause_s: float = OUTAGE_PAUSE_S,
) -> str:
    """Fetch ``zone``'s latest value (and its last 24 h when the history has a hole): ``"ok"``
    or the problem of the call that failed (which pauses the provider for
    ``outage_pause_s`` when it could not be reached)."""
    last = state.history.last_valid(before=now) if state.history is not None else None
    hole = last is None or (now - last[0]).total_seconds() > HISTORY_REFETCH_S
    try:
        reading = provider.latest(zone)
    except ProviderError as e:
        state.live = None
        _note_pause(state, e, now, latest=True, outage_pause_s=outage_pause_s)
        state.problems.append(f"live: {e}")
        return state.problems[-1]
    why = misdated(reading.at, now, max_history_gap_s)
    if why is not None:  # merged, it would push the real history out of the cache
        state.live = None
        state.problems.append(f"live: latest for {zone}: {why}; ignored")
        return state.problems[-1]
    state.live, state.live_at = reading, now
    point = IntensitySeries.from_points(
        zone,
        [reading.at],
        [reading.intensity_g_per_kwh],
        [reading.is_estimated],
        step_s=HOUR_S,
        kind=kind,
        source=reading.source,
        fetched_at=reading.fetched_at,
    )
    if hole:
        try:
            history = provider.history(zone)
            newest = history.end - timedelta(seconds=history.step_s)
            why = misdated(newest, now, max_history_gap_s)
            if why is None:
                point = history.merge(point)
            else:
                state.problems.append(f"history: history for {zone}: {why}; ignored")
        except ForecastsError as e:
            _note_pause(state, e, now, latest=False)
            state.problems.append(f"history: {e}")
    remember(cache, state, point)
    return "ok"


def misdated(newest: datetime, now: datetime, max_history_gap_s: float) -> str | None:
    """Why provider data whose newest point starts at ``newest`` cannot be about ``now``
    (it starts more than an hour after ``now``, or ``max_history_gap_s`` before), else None.
    """
    if (newest - now).total_seconds() > HOUR_S:
        return f"its newest point is for {newest.isoformat()}, after now"
    if (now - newest).total_seconds() > max_history_gap_s:
        return f"its newest point is for {newest.isoformat()}, too long before now"
    return None


def refresh_forecast(
    provider: IntensityProvider,
    cache: SeriesCache | None,
    zone: str,
    state: ZoneState,
    now: datetime,
    *,
    latest_ok: bool = False,
) -> str | None:
    """Fetch the provider's forecast when due; the failed call's problem, else None.
    ``latest_ok``: ``latest`` answered this refresh with the same token, so a 403 here is
    the plan lacking the forecast endpoint, not the token (until 2026-12-08 worded "token
    missing or rejected (set electricitymaps.token ...)" all the same)."""
    stored = state.provider_forecast
    fetched = stored.fetched_at if stored is not None else None
    if fetched is not None and (now - fetched).total_seconds() < FORECAST_REFETCH_S:
        return None
    if state.forecast_retry_at is not None and now < state.forecast_retry_at:
        until = state.forecast_retry_at.isoformat()
        state.problems.append(f"provider forecast: not retried until {until}")
        return None
    state.forecast_failed = True  # until the fetch below succeeds
    try:
        state.provider_forecast = provider.forecast(zone, 72)
    except (ProviderAuthError, ProviderZoneError) as e:
        state.forecast_retry_at = now + timedelta(seconds=FORECAST_BACKOFF_S)
        why = str(e)
        if latest_ok and isinstance(e, ProviderAuthError) and e.status == 403:
            why = (f"forecast for {zone}: HTTP 403: the token works for latest, but the plan "
                   "does not include the forecast endpoint (not asked again for "
                   f"{FORECAST_BACKOFF_S // 3600} h)")  # fmt: skip
        state.problems.append(f"provider forecast: {why}")
        return state.problems[-1]
    except ForecastsError as e:
        _note_pause(state, e, now, latest=False)
        state.problems.append(f"provider forecast: {e}")
        return state.problems[-1]
    state.forecast_failed = False
    if cache is not None:
        try:
            cache.store_forecast(state.provider_forecast)
        except ForecastsError as e:
            state.problems.append(f"provider forecast: {e}")
            return state.problems[-1]
    return None
