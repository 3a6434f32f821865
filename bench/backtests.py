"""The forecaster backtest table of ``docs/forecasts.md``: ``make backtests``.

Runs the backtest ``carbond forecast backtest --trace FILE --zone Z`` runs (its defaults:
every forecaster, an issue every 6 h, 48 h ahead, the lifecycle intensity) on the real 2023
Electricity Maps exports in ``../shared/data`` (or ``$CARBOND_SHARED_DATA``) and prints a
Markdown table: MAPE (%) by horizon for every forecaster, MAE at 24 h, and the forecaster
carbond chooses. The scores are those the command computes, each rounded once, here, to two
decimals (its ``--json`` rounds them to three: rounding that again moved a figure by 0.01).
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench import shared_data_dir
from forecasts import FORECASTERS, BacktestResult, backtest, make_forecaster, read_trace

TRACES = {
    "CA-QC": "electricitymaps_srmadani/CA-QC_2023_hourly.csv",
    "US-CAL-CISO": "electricitymaps_hpe_sustain-cluster/US-CAL-CISO_2023_hourly.csv",
    "US-NW-PACE": "electricitymaps_jasonm-jones/US-NW-PACE_2023_hourly.csv",
    "DE": "electricitymaps_hpe_sustain-cluster/DE-LU_2023_hourly.csv",
    "GB": "electricitymaps_hpe_sustain-cluster/GB_2023_hourly.csv",
}
HORIZONS = (1, 6, 24, 48)


def zone_backtest(trace: Path, zone: str) -> BacktestResult:
    """``carbond forecast backtest --trace trace --zone zone``'s backtest, unrounded."""
    series = read_trace(trace, zones=[zone], kind="lifecycle").zone(zone)
    return backtest(series, [make_forecaster(name) for name in FORECASTERS])


def table_rows(zone: str, result: BacktestResult) -> list[str]:
    """The table's rows of ``zone``: one per forecaster, each figure rounded once."""
    rows = []
    for name in dict.fromkeys(s.forecaster for s in result.scores):
        mark = " **(chosen)**" if name == result.chosen else ""
        mapes = " | ".join(f"{result.score(name, h).mape_pct:.2f}" for h in HORIZONS)
        mae = result.score(name, 24).mae_g_per_kwh
        rows.append(f"| {zone} | {name}{mark} | {mapes} | {mae:.2f} |")
    return rows


def main() -> int:
    data = shared_data_dir()
    if not data.is_dir():
        print(f"third-party data not found at {data} (set CARBOND_SHARED_DATA)", file=sys.stderr)
        return 1
    head = " | ".join(f"MAPE {h} h" for h in HORIZONS)
    print(f"| zone | forecaster | {head} | MAE 24 h (g/kWh) |")
    print("|---|---|" + "---:|" * (len(HORIZONS) + 1))
    for zone, rel in TRACES.items():
        result = zone_backtest(data / "carbon_intensity" / rel, zone)
        for row in table_rows(zone, result):
            print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
