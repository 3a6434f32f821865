"""Where a replay's savings come from: the spatial and temporal parts of each policy's saving
over ``run-now``, and the most that shifting in time alone could save."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from daemon.replay.driver import PolicyRun, ReplaySetup
from daemon.replay.ledger_jobs import count_unfit
from daemon.replay.summary import baseline_index, summarise
from policies.bound import BoundInfeasibleError, lower_bound
from policies.footprint.accounting import operational_g
from policies.means import mean_intensities

__all__ = ["policy_rows", "split_savings", "temporal_potential"]


def policy_rows(setup: ReplaySetup, runs: Sequence[PolicyRun]) -> list[dict[str, Any]]:
    """One row per run, the rows of ``carbond replay`` and ``carbond tune`` alike: the
    summaries of :func:`~daemon.replay.summary.summarise` with the savings split of
    :func:`split_savings` (until 2026-12-07 tune's rows lacked the split)."""
    rows = summarise(runs)
    split_savings(setup, runs, rows)
    return rows


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
    base = _baseline(runs)
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


def _baseline(runs: Sequence[PolicyRun]) -> PolicyRun | None:
    """The ``run-now`` that the summaries measure savings against (:func:`baseline_index`)."""
    at = baseline_index([(run.policy, run.params) for run in runs])
    return None if at is None else runs[at]


def temporal_potential(setup: ReplaySetup, runs: Sequence[PolicyRun]) -> float | None:
    """The most that shifting in time alone could save: 1 - the LP bound with every job kept
    on the region and GPU type ``run-now`` gave it, over run-now's grams (None without a
    complete run-now: one that ran every job but those no GPU can run, which no policy runs;
    until 2026-12-07 one such job, a ledger's for a region the cluster lacks, left it None)."""
    base = _baseline(runs)
    if base is None or setup.duration_noise:
        return None
    unfit = count_unfit(setup.jobs, setup.cluster.devices()) if base.rejected else 0
    if base.rejected != unfit or len(base.outcomes) + unfit != len(setup.jobs):
        return None
    placed = {o.job_id: o for o in base.outcomes}
    pinned = [
        replace(job, regions=(placed[job.job_id].region,), gpu_types=(placed[job.job_id].gpu,))
        for job in setup.jobs
        if job.job_id in placed
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
