"""Forecast throughput for replay: hourly 48-h forecasts over two weeks of five zones.

Synthetic hourly year per zone (daily cycle + mean-reverting level + noise), so it runs without
the shared data. Prints forecasts per second one call at a time (``HistoricalForecasts.at``) and
batched (``prefetch``), and their ratio; then the backtest rate of the four built-ins.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np

from forecasts import FORECASTERS, HistoricalForecasts, IntensitySeries, backtest, make_forecaster

ZONES = ("CA-QC", "US-CAL-CISO", "US-NW-PACE", "DE", "GB")
T0 = datetime(2023, 1, 1, tzinfo=UTC)
HORIZON_S = 48 * 3600


def _trace(zone: str, seed: int) -> IntensitySeries:
    rng = np.random.default_rng(seed)
    hours = np.arange(365 * 24)
    level = np.zeros(len(hours))
    for k in range(1, len(hours)):
        level[k] = 0.98 * level[k - 1] + rng.normal(0, 4)
    values = 250 + level + 80 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 8, len(hours))
    return IntensitySeries(zone, T0, 3600, np.maximum(values, 1.0), source="synthetic")


def main() -> None:
    traces = [_trace(z, k) for k, z in enumerate(ZONES)]
    times = [T0 + timedelta(days=180, hours=h) for h in range(14 * 24)]
    n = len(times) * len(traces)

    start = time.perf_counter()
    for trace in traces:
        replay = HistoricalForecasts(trace, make_forecaster("blend"))
        for t in times:
            replay.at(t, HORIZON_S, 3600)
    single_s = time.perf_counter() - start

    start = time.perf_counter()
    for trace in traces:
        replay = HistoricalForecasts(trace, make_forecaster("blend"))
        replay.prefetch(times, HORIZON_S)
        for t in times:
            replay.at(t, HORIZON_S, 3600)
    batch_s = time.perf_counter() - start

    print(f"blend 48-h forecasts, {len(traces)} zones x {len(times)} hourly issues = {n}")
    print(f"  one at a time : {n / single_s:8.0f} forecasts/s ({single_s:.2f} s)")
    print(f"  prefetch      : {n / batch_s:8.0f} forecasts/s ({batch_s:.2f} s)")
    print(f"  ratio         : {single_s / batch_s:8.1f}x")

    start = time.perf_counter()
    result = backtest(traces[1], [make_forecaster(name) for name in FORECASTERS])
    backtest_s = time.perf_counter() - start
    print(
        f"backtest of {len(FORECASTERS)} forecasters on one zone-year: {result.n_issues} issues "
        f"in {backtest_s:.2f} s ({result.n_issues * len(FORECASTERS) / backtest_s:.0f} forecasts/s)"
    )
