"""The time-indexed MIP: the best schedule on its start grid (brute force agrees on small
instances), and never below the LP bound."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from policies.bound import lower_bound
from policies.estimates import estimate_matrix
from policies.optimum import integer_optimum
from policies.scoring import make_pools
from tests.policies.brute_force import (
    GRID_S,
    brute_force,
    fits,
    small_cluster,
    small_jobs,
    start_options,
)
from tests.policies.conftest import NOW


@pytest.mark.parametrize("seed", range(4))
def test_the_mip_is_the_brute_force_optimum_on_its_grid(seed: int) -> None:
    """Three jobs on one T4 and one RTX 6000 Ada: the MIP on a 5-minute grid finds the schedule
    that trying every pool and every 5-minute start finds, and the LP bound is below it."""
    devs, fcs = small_cluster(seed)
    jobs = small_jobs(seed, 3)
    optimum = integer_optimum(jobs, devs, fcs, grid_s=GRID_S)
    assert optimum.optimal and optimum.total_g is not None and optimum.jobs == 3
    assert optimum.total_g == pytest.approx(brute_force(jobs, devs, fcs, GRID_S), rel=1e-6)
    assert lower_bound(jobs, devs, fcs).total_g <= optimum.total_g * (1 + 1e-9)
    assert optimum.dual_g <= optimum.total_g * (1 + 1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_the_mip_returns_the_schedule_it_costed(seed: int) -> None:
    """Five jobs on two GPUs: the schedule holds each job once, on the grid, after its arrival,
    done by its deadline, within the devices at every instant, and its grams add up to the
    optimum's."""
    devs, fcs = small_cluster(seed)
    jobs = small_jobs(seed, 5)
    optimum = integer_optimum(jobs, devs, fcs, grid_s=GRID_S)
    assert optimum.optimal and optimum.total_g is not None
    schedule = optimum.schedule
    assert [s.job_id for s in schedule] == [j.job_id for j in jobs]
    pools = make_pools(devs)
    index = {(p.region, p.gpu.name): i for i, p in enumerate(pools)}
    chosen = []
    for start, job, options in zip(
        schedule, jobs, start_options(jobs, devs, fcs, GRID_S), strict=True
    ):
        assert job.deadline is not None
        assert start.start.timestamp() % GRID_S == 0
        assert start.wait_s == (start.start - job.submitted_at).total_seconds() >= 0
        assert start.start + timedelta(seconds=start.duration_s) <= job.deadline
        assert start.zone == pools[index[(start.region, start.gpu)]].zone
        begin = (start.start - NOW).total_seconds()
        option = (index[(start.region, start.gpu)], begin, begin + start.duration_s)
        # the brute force's own grams for that pool and start
        assert [o[3] for o in options if o[:3] == option] == [pytest.approx(start.total_g)]
        chosen.append((*option, start.total_g))
    assert fits(chosen, [p.size for p in pools])
    assert sum(s.total_g for s in schedule) == pytest.approx(optimum.total_g, rel=1e-9)


def test_when_no_schedule_fits_there_is_no_optimum() -> None:
    """Six jobs that must each start within minutes of arriving, on two GPUs: each fits
    alone, not all together."""
    devs, fcs = small_cluster(2)
    jobs = small_jobs(2, 6)
    pools = make_pools(devs)
    duration, _, _ = estimate_matrix(jobs, pools)
    alone_s = duration.max(axis=1) + 60.0
    tight = [
        replace(j, submitted_at=NOW, deadline=NOW + timedelta(seconds=float(alone_s[i])))
        for i, j in enumerate(jobs)
    ]
    optimum = integer_optimum(tight, devs, fcs)
    assert optimum.jobs == 6 and not optimum.unschedulable
    assert optimum.total_g is None and not optimum.optimal and optimum.schedule == ()
    assert optimum.infeasible  # proved so: not a time limit (the replay's note said one)
