"""Figures of forecaster backtests (PNG, matplotlib imported lazily)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from daemon.ledger.export import save_figure
from daemon.reports.render import counted
from forecasts import BacktestResult

__all__ = ["plot_backtest"]


def plot_backtest(result: BacktestResult, path: Path) -> Path:
    """MAPE (%) by lead time (h) of every forecaster in ``result``; the chosen one bold.

    Raises:
        OSError: the file cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, mape in result.mape_by_lead_pct.items():
        leads_h = (np.arange(len(mape)) + 1) * result.step_s / 3600
        chosen = name == result.chosen
        ax.plot(
            leads_h, mape, lw=2.4 if chosen else 1.2, label=name + (" (chosen)" if chosen else "")
        )
    ax.set_xlabel("lead time (h)")
    ax.set_ylabel("MAPE (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    first = result.first_issue.date() if result.first_issue else "?"
    last = result.last_issue.date() if result.last_issue else "?"
    ax.set_title(
        f"{result.zone} {result.kind} intensity: backtest, {counted(result.n_issues, 'issue')} "
        f"{first}..{last}",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
