"""Replay results: per-policy summaries, the per-job CSV and the PNG figures.

Summary fields (stable, snake_case; also the ``--json`` output of ``carbond replay``):
``policy, params, total_g, operational_g, embodied_g, energy_kwh, jobs, rejected,
unfinished, deadline_misses, g_per_job, mean_wait_s, p95_wait_s, region_share,
savings_vs_run_now, compared_jobs`` and, when an ``oracle`` ran, ``oracle_savings_captured``
(this policy's savings over the oracle's; None where the oracle saved nothing on the jobs
compared, or there are none).

``jobs`` counts the jobs that ran, ``rejected`` those that never ran (refused, or expired
before they could start), ``unfinished`` those that ran and were still running when the
replay stopped (accounted to the end their simulated run reaches, so they are in ``jobs`` and
the grams); a rejected job emits nothing, so totals of policies that
ran different jobs are not comparable. Savings are therefore computed per job actually run:
over the ``compared_jobs`` that both this policy and ``run-now`` ran (and, for the oracle
share, the oracle too), job by job.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from daemon.ledger.export import write_replacing
from daemon.replay.driver import JobOutcome, PolicyRun, ReplaySetup
from daemon.replay.errors import ReplayInputError
from daemon.replay.inputs import PolicySpec
from daemon.replay.sites import daily_offset
from policies.bound import BoundInfeasibleError, LowerBound, lower_bound
from policies.footprint.accounting import J_PER_KWH, operational_g
from policies.optimum import GRID_S, IntegerOptimum, integer_optimum
from policies.scoring import mean_intensities

__all__ = [
    "CSV_FIELDS",
    "OPTIMUM_CSV_FIELDS",
    "Solved",
    "bound_row",
    "no_bound_row",
    "optimum_row",
    "plot_runs",
    "plot_sites",
    "require_exact_runs",
    "solve_bound",
    "solve_optimum",
    "split_savings",
    "summarise",
    "temporal_potential",
    "write_jobs_csv",
    "write_optimum_csv",
]

T = TypeVar("T")

CSV_FIELDS = (
    "policy", "job_id", "arrival", "deadline", "started_at", "ended_at", "wait_s", "region",
    "zone", "gpu", "energy_j", "planned_intensity_g_per_kwh", "intensity_g_per_kwh",
    "operational_g", "embodied_g", "total_g", "missed_deadline", "grid_j", "pv_j", "battery_j",
    "offset",
)  # fmt: skip


def _placement(waits_s: Sequence[float], regions: Sequence[str]) -> dict[str, Any]:
    """``mean_wait_s``, ``p95_wait_s`` and ``region_share`` of a schedule's jobs."""
    waits = np.array(waits_s) if waits_s else np.zeros(1)
    counts = Counter(regions)
    n = max(len(regions), 1)
    return {
        "mean_wait_s": float(waits.mean()),
        "p95_wait_s": float(np.percentile(waits, 95)),
        "region_share": {r: counts[r] / n for r in sorted(counts)},
    }


def _summary(run: PolicyRun) -> dict[str, Any]:
    outcomes = run.outcomes
    n = max(len(outcomes), 1)
    total = sum(o.total_g for o in outcomes)
    return {
        "policy": run.policy,
        "params": dict(run.params),
        "total_g": total,
        "operational_g": sum(o.operational_g for o in outcomes),
        "embodied_g": sum(o.embodied_g for o in outcomes),
        "energy_kwh": sum(o.energy_j for o in outcomes) / J_PER_KWH,
        "jobs": len(outcomes),
        "rejected": run.rejected,
        "unfinished": run.unfinished,
        "deadline_misses": sum(o.missed_deadline for o in outcomes),
        "g_per_job": total / n,
        **_placement([o.wait_s for o in outcomes], [o.region for o in outcomes]),
        **_site_summary(run),
    }


def _grams(run: PolicyRun) -> dict[str, float]:
    return {o.job_id: o.total_g for o in run.outcomes}


def _over(grams: dict[str, float], common: set[str]) -> float:
    """The grams of the ``common`` jobs, summed in job order (a set's order changes with the
    process's string hashing, and with it the last digits of a plain sum)."""
    return sum(grams[j] for j in sorted(common))


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
    """One summary per run, with savings relative to ``run-now`` and to ``oracle`` (as it
    comes, with no parameters: ``carbond tune``'s grid over the oracle has no reference) when
    run, each over the jobs that the runs compared all ran (see the module docstring)."""
    rows = [_summary(run) for run in runs]
    grams = [_grams(run) for run in runs]
    names = [run.policy for run in runs]
    base = grams[names.index("run-now")] if "run-now" in names else None
    oracle = next((g for run, g in zip(runs, grams, strict=True)
                   if run.policy == "oracle" and not run.params), None)  # fmt: skip
    for row, mine in zip(rows, grams, strict=True):
        row["savings_vs_run_now"] = None
        row["compared_jobs"] = 0
        if oracle is not None:  # the key in every row, None where no share is defined
            row["oracle_savings_captured"] = None
        if base is None:
            continue
        common = set(mine) & set(base)
        row["compared_jobs"] = len(common)
        base_g = _over(base, common)
        if base_g > 0:
            row["savings_vs_run_now"] = 1.0 - _over(mine, common) / base_g
        if oracle is None:
            continue
        common &= set(oracle)
        base_g, oracle_g = _over(base, common), _over(oracle, common)
        if base_g > oracle_g:
            row["oracle_savings_captured"] = (base_g - _over(mine, common)) / (base_g - oracle_g)
    return rows


@dataclass(frozen=True, slots=True)
class Solved(Generic[T]):
    """A solver's answer (:func:`solve_bound`, :func:`solve_optimum`) and the CPU seconds it
    took in the thread that solved it (``carbond replay`` solves beside its replays)."""

    value: T
    cpu_s: float


def solve_bound(setup: ReplaySetup, window_s: float | None = None) -> Solved[LowerBound]:
    """The LP lower bound (:mod:`policies.bound`) of ``setup`` on the realised intensity
    (it needs no replay: ``carbond replay`` solves it while its workers replay).

    Raises:
        ReplayInputError: runs have random duration noise (the bound needs each run's length).
    """
    require_exact_runs(setup, "--bound")
    actuals = setup.actuals()
    started = time.thread_time()  # policies has no clock: the solve is timed here
    bound = lower_bound(setup.jobs, setup.cluster.devices(), actuals,
                        lifetime_years=setup.lifetime_years, duration_factor=setup.truth_factor,
                        window_s=window_s)  # fmt: skip
    return Solved(bound, time.thread_time() - started)


def require_exact_runs(setup: ReplaySetup, option: str) -> None:
    """``option`` (``--bound``, ``--optimum``) needs each run's length, so no random noise.

    Raises:
        ReplayInputError: ``setup`` has duration noise.
    """
    if setup.duration_noise > 0:
        raise ReplayInputError(f"{option}: not defined with --duration-noise (random run times)")


def bound_row(solved: Solved[LowerBound], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The bound as a row named ``lp-bound``; adds ``gap_to_bound`` (grams over the bound,
    minus 1) to every row of a policy that ran every job the bound covers by its deadline
    (None otherwise: its total is over other jobs, or over a schedule the bound does not
    cover)."""
    bound = solved.value
    for row in rows:
        complete = _feasible(row, bound.jobs) and bound.total_g > 0
        row["gap_to_bound"] = row["total_g"] / bound.total_g - 1.0 if complete else None
    how = "one LP" if bound.windows == 1 else f"{bound.windows} windows of {bound.window_s}s"
    how += f", {bound.variables:,} variables, {bound.constraints:,} rows"
    if bound.windows_g is not None and bound.dual_g is not None:
        how += (f": {_g(bound.windows_g)} g; the whole span's Lagrangian dual:"
                f" {_g(bound.dual_g)} g after {bound.dual_steps} steps;")  # fmt: skip
    elif bound.windows_g is not None:
        how += "; the whole span too large for its Lagrangian dual,"
    else:
        how += ","
    note = (f"lp-bound: {_g(bound.total_g)} g over {bound.jobs} jobs ({how}"
            f" {solved.cpu_s:.1f} s CPU)")  # fmt: skip
    if bound.unschedulable:
        note += f"; {len(bound.unschedulable)} jobs cannot meet their deadline even alone"
    return {
        "policy": "lp-bound",
        "params": {},
        "total_g": bound.total_g,
        "jobs": bound.jobs,
        "rejected": len(bound.unschedulable),
        "g_per_job": bound.total_g / max(bound.jobs, 1),
        "savings_vs_run_now": _bound_saving(rows, bound.total_g, bound.jobs),
        "bound_windows": bound.windows,
        "bound_window_s": bound.window_s,
        "bound_variables": bound.variables,
        "bound_windows_g": bound.windows_g,
        "bound_dual_g": bound.dual_g,
        "bound_dual_steps": bound.dual_steps,
        "note": note,
    }


def _g(grams: float) -> str:
    """Grams in a solver's note as the tables show a policy's: one decimal from 100 g, four
    significant digits below (a bound of 0.02 g read "0.0 g")."""
    return f"{grams:,.1f}" if abs(grams) >= 100 else f"{grams:.4g}"


def _feasible(row: dict[str, Any], jobs: int) -> bool:
    """Whether a policy's row is a schedule that the bound and the optimum compare with: it
    ran all ``jobs``, rejected none and missed no deadline (a late run can emit less than any
    schedule that meets every deadline, so its gap would read as beating the bound)."""
    return row["jobs"] == jobs and not row["rejected"] and not row.get("deadline_misses")


def no_bound_row(
    error: BoundInfeasibleError, rows: list[dict[str, Any]], jobs: int
) -> dict[str, Any]:
    """The ``lp-bound`` row where the LP is infeasible: no schedule of the ``jobs`` meets every
    deadline within the devices, so there is no bound (its grams None) and no gap."""
    for row in rows:
        row["gap_to_bound"] = None
    return {
        "policy": "lp-bound",
        "params": {},
        "total_g": None,
        "jobs": jobs,
        "rejected": None,
        "g_per_job": None,
        "savings_vs_run_now": None,
        "bound_windows": None,
        "bound_window_s": None,
        "bound_variables": None,
        "bound_windows_g": None,
        "bound_dual_g": None,
        "bound_dual_steps": 0,
        "note": f"lp-bound: none over {jobs} jobs: {error}; more slack or GPUs would give one",
    }


def solve_optimum(
    setup: ReplaySetup, grid_s: float = GRID_S, time_limit_s: float = 300.0
) -> Solved[IntegerOptimum]:
    """The best offline schedule with starts on a ``grid_s`` grid (:mod:`policies.optimum`,
    HiGHS MIP) of ``setup`` on the realised intensity.

    Raises:
        ReplayInputError: runs have random duration noise (the MIP needs each run's length).
    """
    require_exact_runs(setup, "--optimum")
    actuals = setup.actuals()
    started = time.thread_time()
    best = integer_optimum(setup.jobs, setup.cluster.devices(), actuals, grid_s=grid_s,
                           time_limit_s=time_limit_s, lifetime_years=setup.lifetime_years,
                           duration_factor=setup.truth_factor)  # fmt: skip
    return Solved(best, time.thread_time() - started)


def optimum_row(solved: Solved[IntegerOptimum], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The optimum as a row named ``mip-optimum``; adds ``gap_to_optimum`` to every row of a
    policy that ran every job it covers by its deadline. Its ``dual_g`` is HiGHS's lower bound
    for grid schedules (= ``total_g`` when optimal)."""
    best = solved.value
    total = best.total_g
    for row in rows:
        complete = _feasible(row, best.jobs) and total
        row["gap_to_optimum"] = row["total_g"] / total - 1.0 if complete and total else None
    found = "no schedule found" if total is None else f"{_g(total)} g"
    status = (
        "optimal" if best.optimal
        else "no schedule meets every deadline within the devices" if best.infeasible
        else f"time limit, dual bound {_g(best.dual_g)} g"
    )  # fmt: skip
    note = (f"mip-optimum: {found} over {best.jobs} jobs (starts every {best.grid_s:g} s, "
            f"{status}, {best.variables:,} binaries, {solved.cpu_s:.1f} s CPU)")  # fmt: skip
    schedule = best.schedule
    placement = (
        _placement([s.wait_s for s in schedule], [s.region for s in schedule]) if schedule else {}
    )
    return {
        "policy": "mip-optimum",
        "params": {"grid_s": best.grid_s},
        "total_g": total,
        "dual_g": best.dual_g,
        "optimal": best.optimal,
        "jobs": best.jobs,
        "rejected": len(best.unschedulable),
        "g_per_job": None if total is None else total / max(best.jobs, 1),
        "savings_vs_run_now": None if total is None else _bound_saving(rows, total, best.jobs),
        **placement,
        "note": note,
    }


OPTIMUM_CSV_FIELDS = (
    "job_id", "started_at", "ended_at", "wait_s", "region", "zone", "gpu", "total_g",
)  # fmt: skip


def write_optimum_csv(path: Path, optimum: IntegerOptimum) -> None:
    """The best schedule's jobs (``--optimum --out``), one row each: where and when each
    starts and its grams (written to a temp file, then renamed)."""

    def write(handle: Any) -> None:
        writer = csv.writer(handle)
        writer.writerow(OPTIMUM_CSV_FIELDS)
        writer.writerows(
            (s.job_id, s.start.isoformat(),
             (s.start + timedelta(seconds=s.duration_s)).isoformat(), round(s.wait_s, 3),
             s.region, s.zone, s.gpu, round(s.total_g, 6))
            for s in optimum.schedule
        )  # fmt: skip

    _atomic_write(path, write)


def split_savings(
    setup: ReplaySetup, runs: Sequence[PolicyRun], rows: list[dict[str, Any]]
) -> None:
    """Adds ``spatial_saving`` and ``temporal_saving`` to every row (fractions of run-now's
    grams over the jobs both ran; they add up to ``savings_vs_run_now``).

    Per job: the spatial part is what the policy's placement (region, GPU) saves had it started
    when ``run-now`` started the job; the temporal part what its own start time saves on top,
    both on the realised intensity. With on-site energy (a ``[regions.site]``) both are None:
    the PV and battery energy a job would have had at another start depends on the whole
    schedule's flows, which only the replay itself computes (grid grams alone split run-now's
    own saving of 0 into two opposite parts).
    """
    base = next((run for run in runs if run.policy == "run-now"), None)
    if base is None:
        return
    if any(region.site is not None for region in setup.cluster.regions):
        for row in rows:
            row["spatial_saving"] = row["temporal_saving"] = None
        return
    first = {o.job_id: o for o in base.outcomes}
    pue = {r.name: r.pue for r in setup.cluster.regions}
    for run, row in zip(runs, rows, strict=False):
        row["spatial_saving"] = row["temporal_saving"] = None  # no job in common: none
        common = [o for o in run.outcomes if o.job_id in first]
        base_g = sum(first[o.job_id].total_g for o in common)
        if not common or base_g <= 0:
            continue
        same_time = np.zeros(len(common))
        by_zone: dict[str, list[int]] = {}
        for i, o in enumerate(common):
            by_zone.setdefault(o.zone, []).append(i)
        for zone, index in by_zone.items():
            actual = setup.signals.actual(zone)
            starts = np.array(
                [(first[common[i].job_id].started_at - actual.start).total_seconds() for i in index]
            )
            spans = np.array([(common[i].ended_at - common[i].started_at).total_seconds()
                              for i in index])  # fmt: skip
            means = mean_intensities(actual.values_g_per_kwh, actual.step_s, 0.0, starts, spans)
            for k, i in enumerate(index):
                o = common[i]
                same_time[i] = (
                    operational_g(o.energy_j, float(means[k]), pue[o.region]) + o.embodied_g
                )
        row["spatial_saving"] = (base_g - float(same_time.sum())) / base_g
        row["temporal_saving"] = (float(same_time.sum()) - sum(o.total_g for o in common)) / base_g


def temporal_potential(setup: ReplaySetup, runs: Sequence[PolicyRun]) -> float | None:
    """The most that shifting in time alone could save: 1 - the LP bound with every job kept
    on the region and GPU type ``run-now`` gave it, over run-now's grams (None without a
    complete run-now)."""
    base = next((run for run in runs if run.policy == "run-now"), None)
    if (
        base is None
        or base.rejected
        or len(base.outcomes) != len(setup.jobs)
        or setup.duration_noise
    ):
        return None
    placed = {o.job_id: o for o in base.outcomes}
    pinned = [
        replace(job, regions=(placed[job.job_id].region,), gpu_types=(placed[job.job_id].gpu,))
        for job in setup.jobs
    ]
    actuals = setup.actuals()
    try:
        bound = lower_bound(pinned, setup.cluster.devices(), actuals,
                            lifetime_years=setup.lifetime_years,
                            duration_factor=setup.truth_factor)  # fmt: skip
    except BoundInfeasibleError:  # run-now's placements cannot meet every deadline
        return None
    total = sum(o.total_g for o in base.outcomes)
    return 1.0 - bound.total_g / total if total > 0 and not bound.unschedulable else None


def _bound_saving(rows: list[dict[str, Any]], total_g: float, jobs: int) -> float | None:
    base = next((r for r in rows if r["policy"] == "run-now"), None)
    if base is None or base["jobs"] != jobs or base["total_g"] <= 0:
        return None
    return 1.0 - total_g / float(base["total_g"])


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_replacing(path, write)


def _label(run: PolicyRun) -> str:
    """``run``'s policy as ``--policy`` names it (``carbon-window:min_saving=0.1``): the rows
    and figures of two settings of one policy are told apart."""
    return PolicySpec(run.policy, dict(run.params)).label


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
            writer.writerows(_row(_label(run), o) for o in run.outcomes)

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
                       s=6, alpha=0.5, label=_label(run), marker="o|x+^v"[i % 6])  # fmt: skip
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
                label=_label(run))  # fmt: skip
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
        panels = [(_label(run), rec) for run in runs for rec in run.sites if rec.region == region]
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
