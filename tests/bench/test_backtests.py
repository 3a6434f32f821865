"""bench.backtests, the table of docs/forecasts.md: each figure is the backtest's, rounded once."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench import backtests
from forecasts import FORECASTERS, backtest, make_forecaster, read_trace

_HEADER = (
    "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
    "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
    "Data Source,Data Estimated,Data Estimation Method\n"
)


def _trace(path: Path, seed: int, days: int = 14) -> None:
    """An Electricity Maps hourly export of zone XX: a daily swing and noise."""
    rnd, start = random.Random(seed), datetime(2023, 1, 1, tzinfo=UTC)
    lines = [_HEADER]
    for i in range(days * 24):
        value = 200 + 80 * math.sin(2 * math.pi * i / 24) + rnd.uniform(-30, 30)
        at = start + timedelta(hours=i)
        lines.append(f"{at:%Y-%m-%d %H:%M:%S},X,X,XX,{value / 2:.2f},{value:.2f},50,50,x,false,\n")
    path.parent.mkdir(parents=True)
    path.write_text("".join(lines), encoding="utf-8")


def test_each_figure_is_rounded_once_from_the_backtests_own_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bench formatted ``forecast backtest --json``'s figures, already rounded to three
    decimals, to two: a value such as 22.5447 became 22.545, then 22.55, where the backtest
    (and ``carbond forecast backtest``'s table) says 22.54. US-CAL-CISO persistence's MAE at
    24 h read 21.70 in docs/forecasts.md against the command's 21.71."""
    trace = tmp_path / "carbon_intensity" / "synthetic" / "XX.csv"
    _trace(trace, seed=4)
    result = backtest(
        read_trace(trace, zones=["XX"], kind="lifecycle").zone("XX"),
        [make_forecaster(name) for name in FORECASTERS],
    )
    expected = {
        s.forecaster: [f"{result.score(s.forecaster, h).mape_pct:.2f}" for h in backtests.HORIZONS]
        + [f"{result.score(s.forecaster, 24).mae_g_per_kwh:.2f}"]
        for s in result.scores
    }
    twice = {
        s.forecaster: [f"{round(result.score(s.forecaster, h).mape_pct, 3):.2f}"
                       for h in backtests.HORIZONS]
        + [f"{round(result.score(s.forecaster, 24).mae_g_per_kwh, 3):.2f}"]
        for s in result.scores
    }  # fmt: skip
    assert twice != expected  # the trace has a figure that rounding twice moves

    monkeypatch.setenv("CARBOND_SHARED_DATA", str(tmp_path))
    monkeypatch.setattr(backtests, "TRACES", {"XX": "synthetic/XX.csv"})
    assert backtests.main() == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| XX |")]
    shown = {
        cells[2].removesuffix(" **(chosen)**"): cells[3:-1]
        for cells in ([c.strip() for c in row.split("|")] for row in rows)
    }
    assert shown == expected
