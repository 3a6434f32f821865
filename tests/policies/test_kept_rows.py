"""The planner's kept rows: many cells' alternatives built at once equal the one-cell ones; the
plans handed back are read again whenever a row's job or the slots change."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest

from policies.footprint.accounting import J_PER_KWH
from policies.incremental import _given_cells
from policies.kept_rows import KeptRows, alternatives, grams
from policies.planner import planned_cells
from policies.scoring import Pool, SlotGrid, make_pools
from policies.types import Alternative, JobSpec, PlannedStart
from tests.policies.conftest import NOW
from tests.policies.random_cluster import world


def _one_cell(
    rows: KeptRows, r: int, p: int, s: int, pools: list[Pool], times: list[datetime],
    ids: tuple[str, ...],
) -> Alternative:  # fmt: skip
    """The cell alone, as ``decisions.alternative_at`` reads a cube: scalar reads of the
    rows, operational grams by the accounting formula in its order."""
    pool = pools[p]
    e = float(rows.energy[r, p])
    i = float(rows.intensity_now[r, p] if s == 0 else rows.intensity[r, p, s])
    return Alternative(
        ids, pool.region, pool.gpu.name, times[s], float(rows.duration[r, p]), e, i,
        e / J_PER_KWH * i * pool.pue, float(rows.embodied[r, p]),
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_alternatives_of_many_cells_equal_each_cell_alone(seed: int) -> None:
    """The same floats as the scalar code, with infinite and NaN figures and a PUE given as
    an int, and the same device ids (given, or the pool's first)."""
    rng = np.random.default_rng(seed)
    w = world(seed)
    pools = list(make_pools(w.devices))
    pools[0] = replace(pools[0], pue=2)  # an int PUE: the same products as 2.0
    n_pools, n_slots, n_jobs = len(pools), 6, 30
    rows = KeptRows(n_pools, n_slots)
    for k in range(n_jobs):
        rows.take(w.jobs[k % len(w.jobs)])
    shape = (len(rows.job), n_pools)
    rows.energy[:] = rng.uniform(1e3, 1e7, shape)
    rows.energy[0, 0], rows.energy[1, 0] = np.inf, np.nan
    rows.intensity[:] = rng.uniform(0.0, 800.0, (*shape, n_slots))
    rows.intensity_now[:] = rng.uniform(0.0, 800.0, shape)
    rows.intensity_now[0, :] = 0.0  # inf * 0: NaN, as Python's floats give it
    rows.duration[:] = rng.uniform(1.0, 1e4, shape)
    rows.embodied[:] = rng.uniform(0.0, 5.0, shape)
    rows.gpus[:] = rng.integers(1, 3, len(rows.job))
    times = [NOW + timedelta(minutes=15 * s) for s in range(n_slots)]
    r = rng.integers(0, n_jobs, 200)
    p = rng.integers(0, n_pools, 200)
    s = rng.integers(0, n_slots, 200)
    r[:2], p[:2], s[:2] = [0, 1], [0, 0], [0, 0]
    given = [None if k % 3 else (f"dev-{k}",) for k in range(200)]
    many = alternatives(rows, r, p, s, pools, times, given)
    for k, alt in enumerate(many):
        gk = int(rows.gpus[r[k]])
        ids = given[k] or tuple(d.device_id for d in pools[p[k]].devices[:gk])
        one = _one_cell(rows, int(r[k]), int(p[k]), int(s[k]), pools, times, ids)
        assert repr(alt) == repr(one)  # repr: NaN equals NaN, -0.0 differs from 0.0
        assert all(type(x) is float for x in (alt.energy_j, alt.operational_g))
    assert alternatives(rows, r[:0], p[:0], s[:0], pools, times, []) == []
    pue = np.array([pool.pue for pool in pools])
    total = grams(rows, r, p, s, pue).tolist()  # the grams read without building them
    assert repr(total) == repr([alt.total_g for alt in many])
    p[5] = -1  # no cell
    assert repr(grams(rows, r[:7], p[:7], s[:7], pue).tolist()) == repr(
        [*total[:5], math.nan, total[6]]
    )


@pytest.mark.parametrize("seed", range(3))
def test_plans_handed_back_are_read_again_for_a_new_row_and_after_the_slots_move(
    seed: int,
) -> None:
    """``incremental._given_cells`` (the plans handed back, read per row only when the plan
    object is not the one the row saw) equals ``planner.planned_cells`` of the jobs, also for a
    row released and taken by a job with another plan, and after the slots moved on
    (``shift_cells``)."""
    w = world(seed)
    pools = list(make_pools(w.devices))
    grid = SlotGrid.aligned(NOW + timedelta(minutes=7), 900, 8)
    rng = np.random.default_rng(seed)

    def planned(job: JobSpec, s: int) -> JobSpec:
        pool = pools[int(rng.integers(len(pools)))]
        return replace(job, planned=PlannedStart(pool.region, pool.gpu.name, grid.time(s)))

    jobs = [planned(job, k % 7 + 1) if k % 4 else job for k, job in enumerate(w.jobs[:12])]
    rows = KeptRows(len(pools), grid.count)
    at = np.array([rows.take(job) for job in jobs], dtype=np.int64)

    def check(jobs: list[JobSpec], grid: SlotGrid) -> None:
        pool, slot = _given_cells(rows, at, jobs, pools, grid)
        want = planned_cells(jobs, pools, grid)
        assert pool.tolist() == want[0].tolist() and slot.tolist() == want[1].tolist()

    check(jobs, grid)
    check(jobs, grid)  # read once: the same cells
    for k in (1, 3):  # a job leaves; one with another plan takes its row
        rows.release(jobs[k].job_id)
        jobs[k] = planned(replace(w.jobs[20 + k], planned=None), 6 - k)
        at[k] = rows.take(jobs[k])
    assert len(set(at.tolist())) == len(at)
    check(jobs, grid)
    later = SlotGrid(grid.start + timedelta(seconds=900), 900, 8, 0.0)  # one slot on
    rows.shift_cells(1)
    check(jobs, later)
