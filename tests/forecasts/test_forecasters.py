"""Forecasters and backtests: honest (no peeking), correct on known shapes, replay-ready."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from forecasts import (
    FORECASTERS,
    ForecastsError,
    HistoricalForecasts,
    IntensitySeries,
    ProviderForecaster,
    backtest,
    make_forecaster,
    read_trace,
)

T0 = datetime(2023, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


def _daily(days: int, noise: float = 0.0, seed: int = 0) -> IntensitySeries:
    hours = np.arange(days * 24)
    rng = np.random.default_rng(seed)
    level = np.zeros(len(hours))  # a slowly wandering, mean-reverting level
    for k in range(1, len(hours)):
        level[k] = 0.98 * level[k - 1] + rng.normal(0, noise / 2)
    values = 200 + level + 80 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, noise, len(hours))
    return IntensitySeries("XX", T0, 3600, np.maximum(values, 1.0))


@pytest.mark.parametrize("name", list(FORECASTERS))
def test_forecasts_never_look_at_or_after_the_issue_time(name: str) -> None:
    history = _daily(50, noise=5.0)
    issue = T0 + timedelta(days=45, hours=7)
    tampered = history.replace(
        values_g_per_kwh=np.where(
            history.epoch_s() >= issue.timestamp(), 1e6, history.values_g_per_kwh
        )
    )
    forecaster = make_forecaster(name)
    a = forecaster.forecast(history, issue, 48 * 3600, 3600)
    b = forecaster.forecast(tampered, issue, 48 * 3600, 3600)
    assert a.start == issue and len(a) == 48
    np.testing.assert_array_equal(a.values_g_per_kwh, b.values_g_per_kwh)


def test_persistence_and_seasonal_naive_on_a_pure_daily_cycle() -> None:
    history = _daily(10)
    issue = T0 + timedelta(days=9)
    actual = history.slice(issue, issue + 24 * H).values_g_per_kwh
    seasonal = make_forecaster("seasonal-24h").forecast(
        history.slice(T0, issue), issue, 86400, 3600
    )
    np.testing.assert_allclose(seasonal.values_g_per_kwh, actual)
    flat = make_forecaster("persistence").forecast(history, issue, 86400, 3600)
    assert np.all(flat.values_g_per_kwh == history.at(issue - H))


def test_forecast_resamples_to_the_requested_step() -> None:
    f = make_forecaster("seasonal-24h").forecast(_daily(3), T0 + timedelta(days=2), 6 * 3600, 1800)
    assert f.step_s == 1800 and len(f) == 12 and f.is_estimated.all()


def test_no_history_before_issue_is_an_error() -> None:
    with pytest.raises(ForecastsError, match="no history"):
        make_forecaster("persistence").forecast(_daily(2), T0, 3600, 3600)


def test_unknown_forecaster_name() -> None:
    with pytest.raises(ForecastsError, match="known: persistence"):
        make_forecaster("oracle")


def test_blend_beats_persistence_at_24h_on_a_noisy_daily_cycle() -> None:
    result = backtest(_daily(70, noise=8.0), [make_forecaster(n) for n in FORECASTERS])
    blend, persistence = result.score("blend", 24), result.score("persistence", 24)
    assert blend.mae_g_per_kwh < persistence.mae_g_per_kwh
    assert result.chosen in {"blend", "seasonal-24h"}
    assert result.n_issues > 200 and persistence.n == result.n_issues
    assert len(result.abs_error_p90_g_per_kwh["blend"]) == 48


def test_backtest_too_short() -> None:
    with pytest.raises(ForecastsError, match="too few"):
        backtest(_daily(3), [make_forecaster("persistence")])


@pytest.mark.parametrize(
    "values",
    [np.zeros(20 * 24), np.r_[300.0, np.full(20 * 24 - 1, np.nan)]],
    ids=["all-zero: no MAPE", "all-missing targets: nothing scored"],
)
def test_backtest_of_unscorable_leads_is_nan_and_silent(values: np.ndarray) -> None:
    """numpy's "All-NaN slice" / "Mean of empty slice" warnings reached stderr (and fail
    under pytest's filterwarnings = error)."""
    series = IntensitySeries("DE", T0, 3600, values)
    result = backtest(series, [make_forecaster("persistence")])
    assert np.isnan(result.mape_by_lead_pct["persistence"][0])
    p90 = result.abs_error_p90_g_per_kwh["persistence"]
    assert np.isnan(p90[0]) == np.isnan(values[-1])  # zero error on zeros, none scored else


def test_no_forecast_is_issued_before_the_first_known_point() -> None:
    """A trace whose first days are missing: the inputs carried back from its first known
    point are that point's future, so nothing is issued (or scored) before it, batched or not."""
    values = _daily(20).values_g_per_kwh.copy()
    values[: 9 * 24 + 5] = np.nan
    trace = IntensitySeries("XX", T0, 3600, values)
    first_known = T0 + timedelta(days=9, hours=5)
    result = backtest(trace, [make_forecaster("persistence")], issue_every_s=3600)
    assert result.first_issue == first_known + H
    replay = HistoricalForecasts(trace, make_forecaster("blend"))
    for t in (T0 + timedelta(days=8), first_known):
        with pytest.raises(ForecastsError, match="no known intensity before"):
            replay.at(t, 3600, 3600)
        with pytest.raises(ForecastsError, match="no known intensity before"):
            replay.prefetch([first_known + H, t], 3600)
    after = replay.at(first_known + H, 3 * 3600, 3600)
    assert list(after.values_g_per_kwh) == [values[9 * 24 + 5]] * 3  # seasonal: nothing yet


def test_provider_forecast_gap_filled_by_fallback() -> None:
    history = _daily(5)
    issue = T0 + timedelta(days=5)
    provided = IntensitySeries("XX", issue + 2 * H, 3600, np.array([11.0, 12.0]))
    f = ProviderForecaster(provided).forecast(history, issue, 6 * 3600, 3600)
    last = history.at(issue - H)
    assert list(f.values_g_per_kwh) == [last, last, 11.0, 12.0, last, last]


def test_historical_forecasts_match_a_direct_forecast() -> None:
    trace = _daily(40, noise=3.0)
    replay = HistoricalForecasts(trace, make_forecaster("blend"))
    t = T0 + timedelta(days=35, hours=3, minutes=20)
    got = replay.at(t, 24 * 3600, 3600)
    assert got.start == T0 + timedelta(days=35, hours=4)
    direct = make_forecaster("blend").forecast(trace, t, 24 * 3600, 3600)
    np.testing.assert_allclose(got.values_g_per_kwh, direct.values_g_per_kwh)
    with pytest.raises(ForecastsError):
        replay.at(T0, 3600, 3600)


def test_prefetch_gives_the_same_forecasts_as_one_by_one() -> None:
    trace = _daily(40, noise=3.0)
    times = [T0 + timedelta(days=30, hours=h) for h in range(0, 72, 5)]
    batch = HistoricalForecasts(trace, make_forecaster("blend"))
    batch.prefetch(times, 48 * 3600)
    single = HistoricalForecasts(trace, make_forecaster("blend"))
    for t in times:
        np.testing.assert_allclose(
            batch.at(t, 48 * 3600, 3600).values_g_per_kwh,
            single.at(t, 48 * 3600, 3600).values_g_per_kwh,
        )


PAPER_ZONES = {
    "CA-QC": "electricitymaps_srmadani/CA-QC_2023_hourly.csv",
    "US-CAL-CISO": "electricitymaps_hpe_sustain-cluster/US-CAL-CISO_2023_hourly.csv",
    "US-NW-PACE": "electricitymaps_jasonm-jones/US-NW-PACE_2023_hourly.csv",
}


@pytest.mark.shared_data
@pytest.mark.parametrize("zone", list(PAPER_ZONES))
def test_chosen_forecaster_beats_persistence_at_24h_on_real_traces(
    shared_data: Path, zone: str
) -> None:
    trace = read_trace(shared_data / "carbon_intensity" / PAPER_ZONES[zone]).zone(zone)
    result = backtest(trace, [make_forecaster(n) for n in FORECASTERS], issue_every_s=24 * 3600)
    chosen = result.score(result.chosen, 24).mae_g_per_kwh
    assert result.chosen != "persistence"
    assert chosen < result.score("persistence", 24).mae_g_per_kwh
