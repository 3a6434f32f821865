"""Replay results: per-policy summaries, the per-job CSV and the PNG figures.

Summary fields (stable, snake_case; also the ``--json`` output of ``carbond replay``):
``policy, params, total_g, operational_g, embodied_g, energy_kwh, jobs, rejected,
deadline_misses, mean_wait_s, p95_wait_s, region_share, savings_vs_run_now`` and, when an
``oracle`` ran, ``oracle_savings_captured`` (this policy's savings over the oracle's).
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from daemon.replay.driver import JobOutcome, PolicyRun
from daemon.replay.sites import daily_offset
from policies.footprint.accounting import J_PER_KWH

__all__ = ["CSV_FIELDS", "plot_runs", "plot_sites", "summarise", "write_jobs_csv"]

CSV_FIELDS = (
    "policy", "job_id", "arrival", "deadline", "started_at", "ended_at", "wait_s", "region",
    "zone", "gpu", "energy_j", "planned_intensity_g_per_kwh", "intensity_g_per_kwh",
    "operational_g", "embodied_g", "total_g", "missed_deadline", "grid_j", "pv_j", "battery_j",
    "offset",
)  # fmt: skip


def _summary(run: PolicyRun) -> dict[str, Any]:
    outcomes = run.outcomes
    waits = np.array([o.wait_s for o in outcomes]) if outcomes else np.zeros(1)
    regions = Counter(o.region for o in outcomes)
    n = max(len(outcomes), 1)
    return {
        "policy": run.policy,
        "params": dict(run.params),
        "total_g": sum(o.total_g for o in outcomes),
        "operational_g": sum(o.operational_g for o in outcomes),
        "embodied_g": sum(o.embodied_g for o in outcomes),
        "energy_kwh": sum(o.energy_j for o in outcomes) / J_PER_KWH,
        "jobs": len(outcomes),
        "rejected": run.rejected,
        "deadline_misses": sum(o.missed_deadline for o in outcomes),
        "mean_wait_s": float(waits.mean()),
        "p95_wait_s": float(np.percentile(waits, 95)),
        "region_share": {r: regions[r] / n for r in sorted(regions)},
        **_site_summary(run),
    }


def _site_summary(run: PolicyRun) -> dict[str, Any]:
    """On-site energy of a run: grid, PV and battery kWh, the offset, per day with sites."""
    outcomes = run.outcomes
    grid = sum(o.grid_j for o in outcomes) / J_PER_KWH
    pv = sum(o.pv_j for o in outcomes) / J_PER_KWH
    battery = sum(o.battery_j for o in outcomes) / J_PER_KWH
    total = grid + pv + battery
    row: dict[str, Any] = {"grid_kwh": grid, "pv_kwh": pv, "battery_kwh": battery,
                           "offset": (pv + battery) / total if total else 0.0}  # fmt: skip
    if run.sites:
        row["offset_by_day"] = daily_offset(outcomes)
    return row


def summarise(runs: Sequence[PolicyRun]) -> list[dict[str, Any]]:
    """One summary per run, with savings relative to ``run-now`` and to ``oracle`` when run."""
    rows = [_summary(run) for run in runs]
    base = next((r["total_g"] for r in rows if r["policy"] == "run-now"), None)
    oracle = next((r["total_g"] for r in rows if r["policy"] == "oracle"), None)
    for row in rows:
        row["savings_vs_run_now"] = 1.0 - row["total_g"] / base if base else None
        if base and oracle is not None and base > oracle:
            row["oracle_savings_captured"] = (base - row["total_g"]) / (base - oracle)
    return rows


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _row(policy: str, o: JobOutcome) -> list[object]:
    return [
        policy, o.job_id, o.arrival.isoformat(),
        o.deadline.isoformat() if o.deadline else "", o.started_at.isoformat(),
        o.ended_at.isoformat(), round(o.wait_s, 3), o.region, o.zone, o.gpu,
        round(o.energy_j, 3), round(o.planned_intensity_g_per_kwh, 3),
        round(o.intensity_g_per_kwh, 3), round(o.operational_g, 6), round(o.embodied_g, 6),
        round(o.total_g, 6), int(o.missed_deadline), round(o.grid_j, 3), round(o.pv_j, 3),
        round(o.battery_j, 3), round(o.offset, 6),
    ]  # fmt: skip


def write_jobs_csv(path: Path, runs: Sequence[PolicyRun]) -> None:
    """Every job of every run, one row each (written to a temp file, then renamed)."""

    def write(handle: Any) -> None:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        for run in runs:
            writer.writerows(_row(run.policy, o) for o in run.outcomes)

    _atomic_write(path, write)


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
                       s=6, alpha=0.5, label=run.policy, marker="o|x+^v"[i % 6])  # fmt: skip
        ax.set_ylabel(f"{zone}\ngCO2e/kWh (LCA)")
        ax.xaxis_date()
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=len(runs))
    axes[0, 0].set_title("Realised grid intensity (Electricity Maps lifecycle) and job starts")
    fig.tight_layout()
    paths = [directory / "intensity.png", directory / "cumulative.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(11, 4))
    for run in runs:
        ordered = sorted(run.outcomes, key=lambda o: o.ended_at)
        ax.plot(_days([o.ended_at for o in ordered]), np.cumsum([o.total_g for o in ordered]),
                label=run.policy)  # fmt: skip
    ax.xaxis_date()
    ax.set_ylabel("cumulative gCO2e (operational + embodied)")
    ax.set_title("Cumulative emissions per policy (realised lifecycle intensity)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
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
        panels = [(run.policy, rec) for run in runs for rec in run.sites if rec.region == region]
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
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
