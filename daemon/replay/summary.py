"""Replay summaries: one row per policy run, with its savings and placement.

Summary fields (stable, snake_case; also the ``--json`` output of ``carbond replay``):
``policy, params, total_g, operational_g, embodied_g, energy_kwh, jobs, rejected,
unfinished, deadline_misses, g_per_job, mean_wait_s, p95_wait_s, region_share,
savings_vs_run_now, compared_jobs, grid_kwh, pv_kwh, battery_kwh, offset_share`` (the share
of the facility energy covered on site, as ``carbond report --json`` names it; ``offset``, its
name until 2026-12-07, is kept beside it for one release, deprecated),
``offset_share_by_day`` (UTC day of the jobs' starts to their offset share; ``offset_by_day``
until 2026-12-07, kept beside it for one release, deprecated) when a region has a site, and,
when an ``oracle`` ran, ``oracle_savings_captured`` (this policy's savings over the oracle's;
None where the oracle saved nothing on the jobs compared, or there are none).

The rows ``carbond replay`` and ``carbond tune`` print carry three more fields, added
elsewhere: ``spatial_saving`` and ``temporal_saving``, the parts of ``savings_vs_run_now``
that placement and start time save (:func:`daemon.replay.attribution.split_savings`, called
by :func:`~daemon.replay.attribution.policy_rows`; None with on-site energy, absent with no
``run-now`` replayed), and ``slack_s``, the deadline slack replayed in seconds (None for a
ledger's jobs, which keep their own), set by the command (``daemon/cli/replay_cmd.py``).
Tune adds ``pareto`` and ``excluded`` (:func:`daemon.reports.pareto.mark_front`);
``--bound`` and ``--optimum`` add rows of their own (:mod:`daemon.replay.solvers`).

``jobs`` counts the jobs that ran, ``rejected`` those that never ran (refused, or expired
before they could start), ``unfinished`` those that ran and were still running when the
replay stopped (accounted to the end their simulated run reaches, so they are in ``jobs`` and
the grams); a rejected job emits nothing, so totals of policies that
ran different jobs are not comparable. Savings are therefore computed per job actually run:
over the ``compared_jobs`` that both this policy and ``run-now`` (the plain one when there
is one: :func:`baseline_index`) ran (and, for the oracle
share, the oracle too), job by job.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from daemon.replay.driver import PolicyRun
from daemon.replay.inputs import PolicySpec
from daemon.replay.sites import daily_offset
from policies.footprint.accounting import J_PER_KWH

__all__ = ["baseline_index", "placement_fields", "run_label", "summarise"]


def placement_fields(waits_s: Sequence[float], regions: Sequence[str]) -> dict[str, Any]:
    """``mean_wait_s``, ``p95_wait_s`` and ``region_share`` of a schedule's jobs."""
    waits = np.array(waits_s) if waits_s else np.zeros(1)
    counts = Counter(regions)
    n = max(len(regions), 1)
    return {
        "mean_wait_s": float(waits.mean()),
        "p95_wait_s": float(np.percentile(waits, 95)),
        "region_share": {r: counts[r] / n for r in sorted(counts)},
    }


def baseline_index(named: Sequence[tuple[str, Mapping[str, Any]]]) -> int | None:
    """Which of the runs named ``(policy, params)`` the savings are measured against: the plain
    ``run-now`` (no parameters) when one ran, wherever ``--policy`` put it, else the first
    ``run-now`` (``run-now:lifetime_years=3`` alone); None without one. Until 2026-12-07 the
    first ``run-now`` whatever its parameters: ``--policy run-now:lifetime_years=3,run-now``
    measured every saving against the one with another embodied accounting."""
    runs_now = [i for i, (policy, _) in enumerate(named) if policy == "run-now"]
    plain = [i for i in runs_now if not named[i][1]]
    first = plain or runs_now
    return first[0] if first else None


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
        **placement_fields([o.wait_s for o in outcomes], [o.region for o in outcomes]),
        **_site_summary(run),
    }


def _grams(run: PolicyRun) -> dict[str, float]:
    return {o.job_id: o.total_g for o in run.outcomes}


def _over(grams: dict[str, float], common: set[str]) -> float:
    """The grams of the ``common`` jobs, summed in job order (a set's order changes with the
    process's string hashing, and with it the last digits of a plain sum)."""
    return sum(grams[j] for j in sorted(common))


def _site_summary(run: PolicyRun) -> dict[str, Any]:
    """On-site energy of a run: grid, PV and battery kWh, the share covered on site, per day
    with sites."""
    outcomes = run.outcomes
    grid = sum(o.grid_j for o in outcomes) / J_PER_KWH
    pv = sum(o.pv_j for o in outcomes) / J_PER_KWH
    battery = sum(o.battery_j for o in outcomes) / J_PER_KWH
    total = grid + pv + battery
    share = (pv + battery) / total if total else 0.0
    row: dict[str, Any] = {
        "grid_kwh": grid,
        "pv_kwh": pv,
        "battery_kwh": battery,
        "offset_share": share,
        "offset": share,  # deprecated, offset_share's name until 2026-12-07: one release more
    }
    if run.sites:
        by_day = daily_offset(outcomes)
        row["offset_share_by_day"] = by_day
        row["offset_by_day"] = dict(by_day)  # deprecated, as "offset": one release more
    return row


def summarise(runs: Sequence[PolicyRun]) -> list[dict[str, Any]]:
    """One summary per run, with savings relative to ``run-now`` (:func:`baseline_index`'s)
    and to ``oracle`` (as it
    comes, with no parameters: ``carbond tune``'s grid over the oracle has no reference) when
    run, each over the jobs that the runs compared all ran (see the module docstring)."""
    rows = [_summary(run) for run in runs]
    grams = [_grams(run) for run in runs]
    at = baseline_index([(run.policy, run.params) for run in runs])
    base = None if at is None else grams[at]
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


def run_label(run: PolicyRun) -> str:
    """``run``'s policy as ``--policy`` names it (``carbon-window:min_saving=0.1``): the rows
    and figures of two settings of one policy are told apart."""
    return PolicySpec(run.policy, dict(run.params)).label
