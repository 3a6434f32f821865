"""A replay's figures (``--plot``): realised intensity with each policy's job starts, cumulative
grams per policy, and each site's PV, load and battery."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from daemon.ledger.export import save_figure
from daemon.replay.driver import PolicyRun
from daemon.replay.summary import run_label

__all__ = ["plot_runs", "plot_sites"]


def _days(times: Sequence[datetime]) -> npt.NDArray[np.float64]:
    """Matplotlib date numbers (days since its default 1970 epoch)."""
    return np.array([t.timestamp() for t in times], dtype=np.float64) / 86_400.0


def plot_runs(directory: Path, runs: Sequence[PolicyRun], actuals: dict[str, Any]) -> list[Path]:
    """``intensity.png`` (realised intensity per zone with each policy's job starts) and
    ``cumulative.png`` (cumulative grams per policy over time). Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    starts = [o.started_at for run in runs for o in run.outcomes]
    if not starts:
        return []
    lo, hi = min(starts), max(o.ended_at for run in runs for o in run.outcomes)
    zones = list(actuals)
    fig, axes = plt.subplots(len(zones), 1, figsize=(11, 2.6 * len(zones)), sharex=True,
                             squeeze=False)  # fmt: skip
    for ax, zone in zip(axes[:, 0], zones, strict=True):
        series = actuals[zone]
        first = int((lo - series.start).total_seconds() // series.step_s)
        last = int((hi - series.start).total_seconds() // series.step_s) + 2
        times = [series.start + (k * (series.end - series.start) / len(series.values_g_per_kwh))
                 for k in range(first, last)]  # fmt: skip
        ax.step(_days(times), series.values_g_per_kwh[first:last], where="post", color="0.3", lw=1)
        for i, run in enumerate(runs):
            placed = [o for o in run.outcomes if o.zone == zone]
            when = _days([o.started_at for o in placed])
            ax.scatter(when, [o.intensity_g_per_kwh for o in placed],
                       s=6, alpha=0.5, label=run_label(run), marker="o|x+^v"[i % 6])  # fmt: skip
        ax.set_ylabel(f"{zone}\ngCO2e/kWh (LCA)")
        ax.xaxis_date()
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=len(runs))
    axes[0, 0].set_title("Realised grid intensity (Electricity Maps lifecycle) and job starts")
    fig.tight_layout()
    paths = [directory / "intensity.png", directory / "cumulative.png"]
    save_figure(fig, paths[0], dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(11, 4))
    for run in runs:
        ordered = sorted(run.outcomes, key=lambda o: o.ended_at)
        ax.plot(_days([o.ended_at for o in ordered]), np.cumsum([o.total_g for o in ordered]),
                label=run_label(run))  # fmt: skip
    ax.xaxis_date()
    ax.set_ylabel("cumulative gCO2e (operational + embodied)")
    ax.set_title("Cumulative emissions per policy (realised lifecycle intensity)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, paths[1], dpi=110)
    plt.close(fig)
    return paths


def plot_sites(directory: Path, runs: Sequence[PolicyRun]) -> list[Path]:
    """``site-<region>.png`` per site: PV, GPU (facility) and other load (kW) and the battery's
    state of charge over the replay, one panel per policy. Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regions = list(dict.fromkeys(rec.region for run in runs for rec in run.sites))
    paths = []
    for region in regions:
        panels = [
            (run_label(run), rec) for run in runs for rec in run.sites if rec.region == region
        ]
        fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.8 * len(panels)), sharex=True,
                                 squeeze=False)  # fmt: skip
        for ax, (policy, rec) in zip(axes[:, 0], panels, strict=True):
            flows = rec.flows
            n = len(flows.pv_j)
            edges = [rec.start + timedelta(seconds=k * flows.step_s) for k in range(n + 1)]
            days = _days(edges)
            to_kw = 1.0 / (flows.step_s * 1000.0)
            ax.step(days[:-1], flows.pv_j * to_kw, where="post", color="orange", lw=1, label="PV")
            ax.step(days[:-1], flows.gpu_j * to_kw, where="post", color="C0", lw=0.8,
                    label="GPU load")  # fmt: skip
            if np.any(flows.other_j > 0):
                ax.step(days[:-1], flows.other_j * to_kw, where="post", color="0.5", lw=0.8,
                        label="other load")  # fmt: skip
            ax.set_ylabel("kW")
            ax.set_title(f"{region}: {policy} (on-site offset {flows.offset:.1%})", fontsize=9)
            if np.any(flows.soc > 0):
                soc_ax = ax.twinx()
                soc_ax.plot(days, flows.soc * 100, color="green", lw=0.8, label="battery SoC")
                soc_ax.set_ylim(0, 105)
                soc_ax.set_ylabel("battery SoC %")
                soc_ax.legend(loc="upper right", fontsize=7)
            ax.legend(loc="upper left", fontsize=7)
            ax.xaxis_date()
        axes[-1, 0].set_xlabel("UTC")
        fig.tight_layout()
        path = directory / f"site-{region}.png"
        directory.mkdir(parents=True, exist_ok=True)
        save_figure(fig, path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
