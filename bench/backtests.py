"""The forecaster backtest table of ``docs/forecasts.md``: ``make backtests``.

Runs ``carbond forecast backtest --trace FILE --zone Z --json`` on the real 2023 Electricity
Maps exports in ``../shared/data`` (or ``$CARBOND_SHARED_DATA``) and prints a Markdown table:
MAPE (%) by horizon for every forecaster, MAE at 24 h, and the forecaster carbond chooses.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench import shared_data_dir

TRACES = {
    "CA-QC": "electricitymaps_srmadani/CA-QC_2023_hourly.csv",
    "US-CAL-CISO": "electricitymaps_hpe_sustain-cluster/US-CAL-CISO_2023_hourly.csv",
    "US-NW-PACE": "electricitymaps_jasonm-jones/US-NW-PACE_2023_hourly.csv",
    "DE": "electricitymaps_hpe_sustain-cluster/DE-LU_2023_hourly.csv",
    "GB": "electricitymaps_hpe_sustain-cluster/GB_2023_hourly.csv",
}
HORIZONS = (1, 6, 24, 48)


def main() -> int:
    data = shared_data_dir()
    if not data.is_dir():
        print(f"third-party data not found at {data} (set CARBOND_SHARED_DATA)", file=sys.stderr)
        return 1
    head = " | ".join(f"MAPE {h} h" for h in HORIZONS)
    print(f"| zone | forecaster | {head} | MAE 24 h (g/kWh) |")
    print("|---|---|" + "---:|" * (len(HORIZONS) + 1))
    for zone, rel in TRACES.items():
        trace = data / "carbon_intensity" / rel
        argv = [sys.executable, "-m", "daemon", "forecast", "backtest", "--trace", str(trace)]
        out = subprocess.run(
            [*argv, "--zone", zone, "--json"], check=True, capture_output=True, text=True
        ).stdout
        result = json.loads(out)
        scores = {(s["forecaster"], s["horizon_h"]): s for s in result["scores"]}
        for name in dict.fromkeys(s["forecaster"] for s in result["scores"]):
            mark = " **(chosen)**" if name == result["chosen"] else ""
            mapes = " | ".join(f"{scores[(name, h)]['mape_pct']:.2f}" for h in HORIZONS)
            mae = scores[(name, 24)]["mae_g_per_kwh"]
            print(f"| {zone} | {name}{mark} | {mapes} | {mae:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
