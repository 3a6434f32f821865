"""SignalChain: live -> cache -> history forecast -> static -> error, with rung and age."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import requests
import responses

from forecasts import (
    NO_PROVIDER,
    OFFLINE_PROBLEM,
    ElectricityMapsClient,
    IntensitySeries,
    MalformedPayloadError,
    NoSignalError,
    ProviderAuthError,
    ProviderError,
    ProviderReading,
    ProviderServerError,
    ProviderTimeoutError,
    ProviderZoneError,
    RateLimitedError,
    SeriesCache,
    SignalChain,
    SignalKind,
    TraceProvider,
)
from forecasts.refresh import OUTAGE_PAUSE_S
from forecasts.zone_state import DEFAULT_FORECASTER, MIN_SCORED_ISSUES, UNSCORED_REL_ERROR
from policies.placement import mean_intensity_g_per_kwh

NOW = datetime(2024, 3, 1, 12, 20, tzinfo=UTC)
NOW_HOUR = datetime(2024, 3, 1, 12, tzinfo=UTC)
H = timedelta(hours=1)


@dataclass
class FakeProvider:
    """Serves a fixed history and latest value, or fails when ``down``."""

    down: bool = False
    kind: SignalKind = "lifecycle"
    has_forecast: bool = False
    calls: list[str] = field(default_factory=list)
    latest_at: datetime = NOW_HOUR
    history_shift: timedelta = timedelta(0)

    def latest(self, zone: str) -> ProviderReading:
        self.calls.append("latest")
        if self.down:
            raise ProviderServerError("latest for DE: HTTP 503 from the provider")
        return ProviderReading(zone, 321.0, self.latest_at, False, "lifecycle", NOW)

    def history(self, zone: str) -> IntensitySeries:
        self.calls.append("history")
        start = NOW.replace(minute=0) - 24 * H + self.history_shift
        values = 300 + 50 * np.sin(np.arange(24) * 2 * np.pi / 24)
        return IntensitySeries(zone, start, 3600, values, source="electricitymaps")

    def forecast(self, zone: str, horizon_hours: int | None = None) -> IntensitySeries:
        self.calls.append("forecast")
        if not self.has_forecast:
            raise ProviderAuthError("forecast for DE: HTTP 403: token missing or rejected")
        start = NOW.replace(minute=0)
        values = np.full(24, 111.0)
        return IntensitySeries(
            zone, start, 3600, values, source="electricitymaps:forecast", fetched_at=NOW
        )


def test_live_then_cache_then_history_then_static(tmp_path: Path) -> None:
    provider = FakeProvider()
    chain = SignalChain(provider=provider, cache=SeriesCache(tmp_path))
    outcome = chain.refresh(["DE"], NOW)  # live worked; the failed forecast call is named
    assert outcome == {"DE": "provider forecast: forecast for DE: HTTP 403: token missing or "
                       "rejected"}  # fmt: skip
    live = chain.current("DE", NOW + timedelta(minutes=5))
    assert (live.rung, live.intensity_g_per_kwh, live.stale) == ("live", 321.0, False)
    assert live.age_s == 300.0

    provider.down = True
    later = NOW + timedelta(minutes=30)
    assert "HTTP 503" in chain.refresh(["DE"], later)["DE"]
    cached = chain.current("DE", later)
    assert (cached.rung, cached.intensity_g_per_kwh, cached.stale) == ("cache", 321.0, True)
    assert cached.problem is not None and "HTTP 503" in cached.problem

    # A restart without network: a new chain with only the cache still has history.
    offline = SignalChain(cache=SeriesCache(tmp_path))
    days_later = NOW + timedelta(days=2)
    guess = offline.current("DE", days_later)
    assert guess.rung == "history-forecast" and guess.stale
    forecast = offline.forecast("DE", days_later, 48 * 3600, 3600)
    assert forecast.rung == "history-forecast" and len(forecast.series) == 48
    assert forecast.series.start == days_later.replace(minute=0)
    assert np.all(forecast.pessimistic_g_per_kwh() >= forecast.series.values_g_per_kwh)

    weeks_later = NOW + timedelta(days=30)
    static = offline.current("DE", weeks_later)
    assert (static.rung, static.intensity_g_per_kwh) == ("static", 367.0)


def test_a_days_old_latest_value_is_not_live() -> None:
    """A stalled feed: ``latest`` answers, but with a value from three days ago."""
    provider = FakeProvider(latest_at=NOW.replace(minute=0) - timedelta(days=3))
    chain = SignalChain(provider=provider)
    chain.refresh(["DE"], NOW)
    reading = chain.current("DE", NOW)
    assert reading.rung != "live" and reading.stale
    assert reading.intensity_g_per_kwh != 321.0  # the recent history's last point instead
    assert reading.problem is not None and "live value is for 2024-02-27T12:00" in reading.problem


def test_a_latest_value_hours_old_is_still_live() -> None:
    provider = FakeProvider(latest_at=NOW.replace(minute=0) - 2 * H)
    chain = SignalChain(provider=provider)
    chain.refresh(["DE"], NOW)
    reading = chain.current("DE", NOW)
    assert (reading.rung, reading.intensity_g_per_kwh, reading.stale) == ("live", 321.0, False)


def test_a_future_dated_latest_value_leaves_the_cached_history_alone(tmp_path: Path) -> None:
    """Merged, a point four years ahead made the cache keep only its last 1,440 hours: NaN and
    that point; the real history was gone and the zone fell to the static rung."""
    cache = SeriesCache(tmp_path)
    SignalChain(provider=FakeProvider(), cache=cache).refresh(["DE"], NOW)
    before = cache.load("DE")
    assert before is not None

    chain = SignalChain(provider=FakeProvider(latest_at=NOW_HOUR + 4 * 365 * 24 * H), cache=cache)
    assert "after now; ignored" in chain.refresh(["DE"], NOW + H)["DE"]
    after = cache.load("DE")
    assert after is not None and after.end == before.end
    reading = chain.current("DE", NOW + H)
    assert (reading.rung, reading.intensity_g_per_kwh) == ("cache", 321.0)


def test_a_future_dated_history_is_ignored() -> None:
    chain = SignalChain(provider=FakeProvider(history_shift=4 * 365 * 24 * H))
    chain.refresh(["DE"], NOW)
    assert any("history for DE" in p and "after now" in p for p in chain.problems("DE"))
    assert chain.current("DE", NOW).rung == "live"


def test_static_zone_works_with_nothing_configured() -> None:
    chain = SignalChain()
    reading = chain.current("ca-qc", NOW)
    assert (reading.rung, reading.intensity_g_per_kwh, reading.stale) == ("static", 31.0, True)
    forecast = chain.forecast("CA-QC", NOW, 6 * 3600, 3600)
    assert forecast.rung == "static" and list(forecast.series.values_g_per_kwh) == [31.0] * 6


def test_a_direct_chain_labels_its_static_fallback_as_the_lifecycle_figure_it_is() -> None:
    """The static annual table holds lifecycle averages; a chain serving ``direct`` figures
    labelled them ``direct`` when it fell back to them."""
    chain = SignalChain(kind="direct")
    reading = chain.current("CA-QC", NOW)
    assert (reading.rung, reading.kind) == ("static", "lifecycle")
    assert reading.problem is not None
    assert "static annual values are lifecycle averages, not direct" in reading.problem
    forecast = chain.forecast("CA-QC", NOW, 6 * 3600, 3600)
    assert forecast.series.kind == "lifecycle" and "not direct" in (forecast.problem or "")
    assert "not direct" not in (SignalChain().current("CA-QC", NOW).problem or "")


def test_unknown_zone_everywhere_is_a_clear_error() -> None:
    with pytest.raises(NoSignalError, match="XX-NOWHERE"):
        SignalChain().current("XX-NOWHERE", NOW)


def test_trace_history_is_used_and_forecasters_are_scored() -> None:
    start = NOW - timedelta(days=40)
    hours = np.arange(40 * 24 + 12)
    values = 200 + 80 * np.sin(2 * np.pi * hours / 24)
    trace = IntensitySeries("US-CAL-CISO", start.replace(minute=0), 3600, values, source="t.csv")
    chain = SignalChain(traces={"US-CAL-CISO": trace})
    forecast = chain.forecast("US-CAL-CISO", NOW, 24 * 3600, 3600)
    assert forecast.forecaster == chain.chosen_forecaster("US-CAL-CISO")
    assert forecast.forecaster != "persistence" and forecast.mape_24h_pct is not None


def test_marginal_trace_in_an_average_chain_is_refused() -> None:
    trace = IntensitySeries("DE", NOW, 3600, np.array([1.0]), kind="marginal")
    with pytest.raises(Exception, match="different kinds"):
        SignalChain(traces={"DE": trace})


def test_refresh_is_polite_to_the_provider() -> None:
    provider = FakeProvider()
    chain = SignalChain(provider=provider)
    for minutes in (0, 5, 10):
        chain.refresh(["DE"], NOW + timedelta(minutes=minutes))
    # /latest every time, /history once (no hole after that), /forecast once: 403 backs off.
    assert provider.calls.count("latest") == 3
    assert provider.calls.count("history") == 1
    assert provider.calls.count("forecast") == 1
    assert any("provider forecast: not retried" in p for p in chain.problems("de"))
    chain.refresh(["DE"], NOW + timedelta(hours=7))
    assert provider.calls.count("forecast") == 2


def test_a_rate_limited_provider_is_not_called_until_its_retry_after() -> None:
    """A 429 with ``Retry-After: 600``: until 2026-12-07 the same refresh went on to
    ``/forecast`` and every other zone, and the next refresh (5 min later) asked again."""

    @dataclass
    class RateLimited(FakeProvider):
        limited: bool = True

        def latest(self, zone: str) -> ProviderReading:
            if self.limited:
                self.calls.append("latest")
                raise RateLimitedError("latest for DE: HTTP 429 rate limited", 600.0)
            return super().latest(zone)

    provider = RateLimited(has_forecast=True)
    chain = SignalChain(provider=provider)
    first = chain.refresh(["DE", "FR"], NOW)
    assert provider.calls == ["latest"]
    assert first["FR"].startswith("provider: rate limited (HTTP 429): not called until ")
    later = NOW + timedelta(minutes=5)
    chain.refresh(["DE"], later)
    assert provider.calls == ["latest"]
    assert any("not called until 2024-03-01T12:30:00" in p for p in chain.problems("DE"))
    assert chain.current("DE", later).rung != "live"
    provider.limited = False
    chain.refresh(["DE"], NOW + timedelta(minutes=10))
    assert provider.calls == ["latest", "latest", "history", "forecast"]
    assert chain.current("DE", NOW + timedelta(minutes=10)).rung == "live"


@pytest.mark.parametrize(
    "error",
    [
        ProviderServerError("latest for DE: HTTP 503 from the provider"),
        ProviderTimeoutError("latest for DE: cannot connect to http://127.0.0.1:9/v3"),
        ProviderAuthError("latest for DE: HTTP 401: token missing or rejected"),
    ],
)
def test_a_provider_latest_cannot_reach_is_not_called_again_in_that_refresh(
    error: ProviderError,
) -> None:
    """``latest`` failing after the client's retries (5xx, timeout, refused) or with a 401:
    until 2026-12-07 the chain went on to ``/forecast`` and to every other zone, each call
    retried in turn: against a server that never answers, 87 s a zone under the tick lock.
    Now nothing more is asked for ``OUTAGE_PAUSE_S``; the fallback rungs still answer."""

    @dataclass
    class Down(FakeProvider):
        failing: bool = True

        def latest(self, zone: str) -> ProviderReading:
            if self.failing:
                self.calls.append("latest")
                raise error
            return super().latest(zone)

    provider = Down(has_forecast=True)
    chain = SignalChain(provider=provider)
    outcome = chain.refresh(["DE", "FR", "GB"], NOW)
    assert provider.calls == ["latest"]
    assert outcome["DE"] == f"live: {error}"
    until = (NOW + timedelta(seconds=OUTAGE_PAUSE_S)).isoformat()
    assert outcome["FR"] == f"provider: {error}: not called until {until}"
    assert chain.current("FR", NOW).rung == "static"
    assert chain.forecast("DE", NOW, 6 * 3600, 3600).rung == "static"
    provider.failing = False
    chain.refresh(["DE", "FR"], NOW + timedelta(seconds=OUTAGE_PAUSE_S))
    assert provider.calls.count("latest") == 3 and provider.calls.count("forecast") == 2
    assert chain.current("FR", NOW + timedelta(seconds=OUTAGE_PAUSE_S)).rung == "live"


@pytest.mark.parametrize(
    "error",
    [
        ProviderZoneError("latest for XX: HTTP 404: unknown zone 'XX'"),
        MalformedPayloadError("latest for XX: body is not JSON"),
    ],
)
def test_a_zone_the_provider_answers_about_wrongly_pauses_no_other_zone(
    error: ProviderError,
) -> None:
    """An unknown zone or a bad payload is about that zone: the provider answered."""

    @dataclass
    class OneBadZone(FakeProvider):
        def latest(self, zone: str) -> ProviderReading:
            if zone == "XX":
                self.calls.append("latest")
                raise error
            return super().latest(zone)

    provider = OneBadZone(has_forecast=True)
    chain = SignalChain(provider=provider)
    outcome = chain.refresh(["XX", "DE"], NOW)
    assert outcome["DE"] == "ok"
    assert provider.calls.count("latest") == 2


def test_a_forecast_endpoint_that_is_down_pauses_no_zone_s_latest() -> None:
    """``/forecast`` failing while ``latest`` answers: every zone still gets its latest."""

    @dataclass
    class ForecastDown(FakeProvider):
        def forecast(self, zone: str, horizon_hours: int | None = None) -> IntensitySeries:
            self.calls.append("forecast")
            raise ProviderTimeoutError(f"forecast for {zone}: timed out (ReadTimeout)")

    provider = ForecastDown()
    chain = SignalChain(provider=provider)
    chain.refresh(["DE", "FR"], NOW)
    assert provider.calls.count("latest") == 2 and provider.calls.count("forecast") == 2
    assert chain.current("FR", NOW).rung == "live"


def test_provider_forecast_is_used_and_labelled() -> None:
    provider = FakeProvider(has_forecast=True)
    chain = SignalChain(provider=provider)
    chain.refresh(["de"], NOW)
    forecast = chain.forecast("DE", NOW + timedelta(minutes=1), 30 * 3600, 3600)
    assert (forecast.forecaster, forecast.rung, forecast.zone) == ("provider", "live", "DE")
    values = forecast.series.values_g_per_kwh
    assert len(values) == 30 and list(values[:24]) == [111.0] * 24
    assert np.all(values[24:] != 111.0)  # beyond the provider's 24 h: filled from history
    stale = chain.forecast("DE", NOW + timedelta(hours=1), 6 * 3600, 3600)
    assert stale.rung == "cache"


@pytest.mark.parametrize("after", [5 * H, 65 * timedelta(minutes=1)])
def test_a_provider_forecast_that_failed_to_refresh_is_cache_and_says_why(
    after: timedelta,
) -> None:
    """The /forecast refetch failing while /latest answered: the forecast of 5 h ago was
    labelled ``live``, with no problem; one 65 min old still was until 2026-12-07 (the grace
    of ``live_max_age_s`` past the hourly refetch covered a refetch that had failed)."""

    @dataclass
    class FailingForecasts(FakeProvider):
        failing: bool = False

        def forecast(self, zone: str, horizon_hours: int | None = None) -> IntensitySeries:
            if self.failing:
                self.calls.append("forecast")
                raise ProviderServerError("forecast for DE: HTTP 503 from the provider")
            return super().forecast(zone, horizon_hours)

    provider = FailingForecasts(has_forecast=True)
    chain = SignalChain(provider=provider)
    chain.refresh(["DE"], NOW)
    fresh = chain.forecast("DE", NOW + timedelta(minutes=1), 6 * 3600, 3600)
    assert (fresh.rung, fresh.problem) == ("live", None)
    provider.failing, later = True, NOW + after
    provider.latest_at = later.replace(minute=0)
    chain.refresh(["DE"], later)
    assert provider.calls.count("forecast") == 2  # the refetch was due, and failed
    old = chain.forecast("DE", later, 6 * 3600, 3600)
    assert (old.forecaster, old.rung, old.age_s) == ("provider", "cache", after.total_seconds())
    assert old.problem == "provider forecast: forecast for DE: HTTP 503 from the provider"


def test_zone_forecast_is_what_policies_take() -> None:
    forecast = SignalChain().forecast("US-NW-PACE", NOW, 6 * 3600, 3600)
    assert forecast.start == NOW.replace(minute=0) and forecast.step_s == 3600
    assert mean_intensity_g_per_kwh(forecast, forecast.start, 7200) == 647.0
    assert np.all(forecast.upper_g_per_kwh > forecast.values_g_per_kwh)


def test_replay_drives_the_same_chain_through_a_trace_provider() -> None:
    start = datetime(2023, 6, 1, tzinfo=UTC)
    hours = np.arange(20 * 24)
    trace = IntensitySeries(
        "US-CAL-CISO", start, 3600, 200 + 80 * np.sin(2 * np.pi * hours / 24), source="t.csv"
    )
    provider = TraceProvider({"US-CAL-CISO": trace})
    chain = SignalChain(provider=provider)
    for step in range(3):
        t = start + timedelta(days=15, hours=step, minutes=30)
        provider.now = t
        outcome = chain.refresh(["US-CAL-CISO"], t)["US-CAL-CISO"]
        # the first round asks for a provider forecast once (a trace has none), then backs off
        assert outcome == ("ok" if step else "provider forecast: forecast for US-CAL-CISO: a "
                           "trace has no provider forecast")  # fmt: skip
        reading = chain.current("US-CAL-CISO", t)
        assert (reading.rung, reading.stale) == ("live", False)
        assert reading.intensity_g_per_kwh == trace.at(t)
    forecast = chain.forecast("US-CAL-CISO", t, 24 * 3600, 3600)
    assert forecast.rung == "history-forecast"  # the trace has no provider forecast
    assert forecast.series.start == t.replace(minute=0)
    provider.now = start + timedelta(days=30)  # past the end: an outage, then the cache
    assert chain.refresh(["US-CAL-CISO"], provider.now)["US-CAL-CISO"].startswith("live: ")
    assert chain.current("US-CAL-CISO", provider.now).rung != "live"


def test_lead_times_the_backtest_could_not_score_are_not_certain() -> None:
    """Forty days of which only the last hour is known: scoring finds no target, and the
    forecast's p90 error must not come out as 0 (a certain forecast)."""
    values = np.full(40 * 24, np.nan)
    values[-1] = 300.0
    trace = IntensitySeries("DE", NOW_HOUR - 40 * 24 * H, 3600, values)
    forecast = SignalChain(traces={"DE": trace}).forecast("DE", NOW, 6 * 3600, 3600)
    assert forecast.rung == "history-forecast"
    assert np.all(forecast.abs_error_p90_g_per_kwh > 0)


def test_a_corrupt_history_cache_keeps_the_stored_provider_forecast(tmp_path: Path) -> None:
    """The history and the provider's forecast are two files: a corrupt history lost the
    stored forecast too (both were read under one ``try``), so a restarted daemon with the
    provider down fell back to a history forecast it had no history for."""
    chain = SignalChain(provider=FakeProvider(has_forecast=True), cache=SeriesCache(tmp_path))
    chain.refresh(["DE"], NOW)
    (tmp_path / "DE.lifecycle.history.json").write_text("{not json", encoding="utf-8")
    restarted = SignalChain(provider=FakeProvider(down=True), cache=SeriesCache(tmp_path))
    forecast = restarted.forecast("DE", NOW + timedelta(minutes=1), 6 * 3600, 3600)
    assert (forecast.forecaster, forecast.rung) == ("provider", "cache")
    assert list(forecast.series.values_g_per_kwh) == [111.0] * 6
    assert any("DE.lifecycle.history.json" in p for p in restarted.problems("DE"))


def test_a_zone_named_in_lower_case_reads_its_cache(tmp_path: Path) -> None:
    """``problems("de")`` as the first call for a zone loaded ``de.lifecycle.*.json``, which
    does not exist on a case-sensitive file system (the cache's files are named by the
    canonical zone), and the zone's state was then marked loaded with no history."""
    SignalChain(provider=FakeProvider(), cache=SeriesCache(tmp_path)).refresh(["DE"], NOW)
    chain = SignalChain(cache=SeriesCache(tmp_path))
    assert chain.problems("de") == ()
    assert chain.current("DE", NOW).rung == "cache"


@pytest.mark.parametrize(("days", "issues"), [(4, 1), (11, 5)])
def test_too_few_backtest_issues_give_no_p90_error_of_their_own(days: int, issues: int) -> None:
    """Under two weeks of a flat history the backtest has a handful of issues (one at four
    days), every forecaster exact on them: the chain claimed a p90 error and a 24 h MAPE of
    0.0, a certain forecast. Too few issues are not enough history: the error is the assumed
    one, with why, and no MAPE."""
    trace = IntensitySeries("DE", NOW_HOUR - days * 24 * H, 3600, np.full(days * 24, 300.0))
    forecast = SignalChain(traces={"DE": trace}).forecast("DE", NOW, 6 * 3600, 3600)
    assert forecast.rung == "history-forecast"
    assert np.all(forecast.abs_error_p90_g_per_kwh == 300.0 * UNSCORED_REL_ERROR)
    assert forecast.mape_24h_pct is None
    s = "" if issues == 1 else "s"
    assert forecast.error_note == (
        f"not enough history ({issues} backtest issue{s}, {MIN_SCORED_ISSUES} needed): the "
        "default forecaster, none picked from so few"
    )


@pytest.mark.parametrize(("days", "issues"), [(4, 1), (11, 5)])
def test_too_few_backtest_issues_pick_no_forecaster(days: int, issues: int) -> None:
    """On a rising history persistence is best on the few issues under two weeks give: the
    chain forecast with it, a pick from noise. It keeps the default now, and says so."""
    ramp = 100.0 + np.arange(days * 24, dtype=float)
    trace = IntensitySeries("DE", NOW_HOUR - days * 24 * H, 3600, ramp)
    chain = SignalChain(traces={"DE": trace})
    forecast = chain.forecast("DE", NOW, 6 * 3600, 3600)
    assert forecast.forecaster == chain.chosen_forecaster("DE") == DEFAULT_FORECASTER  # was:
    # persistence, which chosen_forecaster named too
    assert forecast.error_note is not None
    assert forecast.error_note.startswith(f"not enough history ({issues} backtest issue")
    assert forecast.error_note.endswith(": the default forecaster, none picked from so few")
    assumed = forecast.series.values_g_per_kwh * UNSCORED_REL_ERROR
    assert np.all(forecast.abs_error_p90_g_per_kwh == assumed)


def test_enough_backtest_issues_pick_the_forecaster() -> None:
    """Twenty days of the same ramp: 41 issues, the backtest's pick is used."""
    trace = IntensitySeries("DE", NOW_HOUR - 20 * 24 * H, 3600, 100.0 + np.arange(20 * 24.0))
    chain = SignalChain(traces={"DE": trace})
    forecast = chain.forecast("DE", NOW, 6 * 3600, 3600)
    assert forecast.forecaster == chain.chosen_forecaster("DE") != DEFAULT_FORECASTER
    assert forecast.error_note is None


def test_enough_backtest_issues_give_the_backtests_p90_error() -> None:
    """Twenty days of the same flat history: 41 issues, every one exact, a p90 of 0 earned."""
    trace = IntensitySeries("DE", NOW_HOUR - 20 * 24 * H, 3600, np.full(20 * 24, 300.0))
    forecast = SignalChain(traces={"DE": trace}).forecast("DE", NOW, 6 * 3600, 3600)
    assert forecast.error_note is None and forecast.mape_24h_pct == 0.0
    assert np.all(forecast.abs_error_p90_g_per_kwh == 0.0)


def test_a_history_too_old_to_forecast_from_is_reported_as_such() -> None:
    months_ago = NOW_HOUR - timedelta(days=90)
    old = IntensitySeries("DE", months_ago - 23 * H, 3600, np.full(24, 300.0))
    chain = SignalChain(traces={"DE": old})  # no provider: nothing counts as a failure
    assert chain.current("DE", NOW).rung == "static"
    stale = chain.stale_history("de", NOW)
    assert stale is not None
    assert (stale.zone, stale.newest_at) == ("DE", months_ago)
    assert stale.gap_s == (NOW_HOUR - months_ago - H).total_seconds()  # from now's hour
    assert stale.max_gap_s == chain.max_history_gap_s
    # a day old: the history forecast serves it; no history at all (a fresh tokenless
    # install, the demo): nothing stale either
    recent = old.replace(start=NOW_HOUR - 24 * H)
    assert SignalChain(traces={"DE": recent}).stale_history("DE", NOW) is None
    assert SignalChain().stale_history("DE", NOW) is None


def test_an_offline_chain_s_words_are_the_ones_forecasts_exports() -> None:
    """``carbond doctor`` drops the offline note and the history forecast's refusal of a
    too-old history from a reading's problem, and the service does not count an offline
    refresh as a failure, by the phrases forecasts exports: until 2026-12-08 they re-typed
    them, so a change of wording here would have doctor print both silently."""
    months_ago = NOW_HOUR - timedelta(days=90)
    old = IntensitySeries("DE", months_ago - 23 * H, 3600, np.full(24, 300.0))
    chain = SignalChain(traces={"DE": old})
    assert chain.refresh(["DE"], NOW) == {"DE": NO_PROVIDER}
    problems = (chain.current("DE", NOW).problem or "").split("; ")
    stale = chain.stale_history("DE", NOW)
    assert stale is not None
    assert problems[:2] == [OFFLINE_PROBLEM, stale.forecast_problem], problems
    assert stale.forecast_problem == "history forecast: history ends 90.0 days before now"
    forecast = chain.forecast("DE", NOW, 6 * 3600, 3600)
    assert stale.forecast_problem in (forecast.problem or "").split("; ")


def test_an_outage_pause_shorter_than_the_refresh_interval_notices_recovery_then() -> None:
    """The daemon refreshing every 30 s: ``latest`` down at one refresh is asked again at
    the next (``outage_pause_s`` = the refresh interval), not 60 s later, while a 429's
    pause is its ``Retry-After`` whatever the interval."""

    @dataclass
    class Flaky(FakeProvider):
        error: ProviderError | None = None

        def latest(self, zone: str) -> ProviderReading:
            if self.error is not None:
                self.calls.append("latest")
                raise self.error
            return super().latest(zone)

    assert SignalChain().outage_pause_s == OUTAGE_PAUSE_S
    provider = Flaky(error=ProviderServerError("latest for DE: HTTP 503"))
    chain = SignalChain(provider=provider, outage_pause_s=30.0)
    chain.refresh(["DE"], NOW)
    provider.error = None
    later = NOW + timedelta(seconds=30)
    assert chain.refresh(["DE"], later)["DE"] != "ok"  # only the 403 on /forecast
    assert chain.current("DE", later).rung == "live"
    provider.error = RateLimitedError("latest for DE: HTTP 429", retry_after_s=120.0)
    chain.refresh(["DE"], later + timedelta(seconds=30))
    provider.error = None
    outcome = chain.refresh(["DE"], later + timedelta(seconds=60))
    assert "not called until" in outcome["DE"]
    assert provider.calls.count("latest") == 3


@responses.activate
def test_a_forecast_403_with_a_token_latest_accepts_blames_the_plan_not_the_token() -> None:
    """A plan without the forecast endpoint answers it 403 while ``latest`` works with the
    same token: until 2026-12-08 the problem said "token missing or rejected (set
    electricitymaps.token ...)", sending the operator after a token that works."""
    base = "https://em.test/v3"
    stamp = NOW_HOUR.strftime("%Y-%m-%dT%H:%M:%SZ")
    latest = {"zone": "DE", "carbonIntensity": 300, "datetime": stamp, "isEstimated": False}
    responses.get(f"{base}/carbon-intensity/latest", json=latest)
    responses.get(f"{base}/carbon-intensity/forecast", status=403, json={"error": "no"})
    client = ElectricityMapsClient(requests.Session(), base_url=base, token="t", max_retries=0)
    known = IntensitySeries("DE", NOW_HOUR - 24 * H, 3600, np.full(24, 280.0))
    chain = SignalChain(provider=client, traces={"DE": known})  # no hole: no /history
    outcome = chain.refresh(["DE"], NOW)["DE"]
    assert outcome == (
        "provider forecast: forecast for DE: HTTP 403: the token works for latest, but the "
        "plan does not include the forecast endpoint (not asked again for 6 h)"
    )
    assert "electricitymaps.token" not in outcome
    assert chain.current("DE", NOW).rung == "live"
    # a 403 on latest too is the token's
    responses.replace(responses.GET, f"{base}/carbon-intensity/latest", status=403, json={})
    outcome = chain.refresh(["DE"], NOW + timedelta(hours=7))["DE"]
    assert "token missing or rejected (set electricitymaps.token" in outcome


@pytest.mark.parametrize("ended_before_hour", [timedelta(days=7), timedelta(days=7, hours=1)])
def test_stale_history_is_judged_as_the_history_forecast_judges_it(
    ended_before_hour: timedelta,
) -> None:
    """A history whose last point ended exactly ``max_history_gap_s`` before the hour of
    ``now`` (12:20) is still forecast from; one an hour older is not. ``stale_history`` says
    the same of each: until 2026-12-08 it measured from ``now``, not its hour, and called the
    first stale (its health problem: "planning on the static rung") while the chain planned
    on its history forecast."""
    end = NOW_HOUR - ended_before_hour
    history = IntensitySeries("DE", end - 24 * H, 3600, np.full(24, 300.0))
    chain = SignalChain(traces={"DE": history})
    fell_to_static = chain.current("DE", NOW).rung == "static"
    assert fell_to_static == (ended_before_hour > timedelta(days=7))
    assert (chain.stale_history("DE", NOW) is not None) == fell_to_static
