"""The time-indexed MIP: the best schedule on its start grid (brute force agrees on small
instances), and never below the LP bound."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from policies.bound import lower_bound
from policies.optimum import integer_optimum
from policies.scoring import estimate_matrix, make_pools
from tests.policies.conftest import NOW
from tests.policies.test_bound import GRID_S, _brute_force, _cluster, _jobs


@pytest.mark.parametrize("seed", range(4))
def test_the_mip_is_the_brute_force_optimum_on_its_grid(seed: int) -> None:
    """Three jobs on one T4 and one RTX 6000 Ada: the MIP on a 5-minute grid finds the schedule
    that trying every pool and every 5-minute start finds, and the LP bound is below it."""
    devs, fcs = _cluster(seed)
    jobs = _jobs(seed, 3)
    optimum = integer_optimum(jobs, devs, fcs, grid_s=GRID_S)
    assert optimum.optimal and optimum.total_g is not None and optimum.jobs == 3
    assert optimum.total_g == pytest.approx(_brute_force(jobs, devs, fcs, GRID_S), rel=1e-6)
    assert lower_bound(jobs, devs, fcs).total_g <= optimum.total_g * (1 + 1e-9)
    assert optimum.dual_g <= optimum.total_g * (1 + 1e-9)


def test_when_no_schedule_fits_there_is_no_optimum() -> None:
    """Six jobs that must each start within minutes of arriving, on two GPUs: each fits
    alone, not all together."""
    devs, fcs = _cluster(2)
    jobs = _jobs(2, 6)
    pools = make_pools(devs)
    duration, _, _ = estimate_matrix(jobs, pools)
    alone_s = duration.max(axis=1) + 60.0
    tight = [
        replace(j, submitted_at=NOW, deadline=NOW + timedelta(seconds=float(alone_s[i])))
        for i, j in enumerate(jobs)
    ]
    optimum = integer_optimum(tight, devs, fcs)
    assert optimum.jobs == 6 and not optimum.unschedulable
    assert optimum.total_g is None and not optimum.optimal
