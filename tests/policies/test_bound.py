"""The LP lower bound: never above the true optimum (brute force on small instances), exact
where capacity does not bind, and it tightens what capacity forces."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from policies.bound import _cells, _costs, lower_bound
from policies.bound_rows import capacity_rows, rows_of
from policies.estimates import estimate_matrix
from policies.footprint.accounting import DEFAULT_LIFETIME_YEARS
from policies.scoring import make_pools
from policies.types import JobSpec
from tests.policies.brute_force import (
    GRID_S,
    brute_force,
    small_cluster,
    small_jobs,
    start_options,
)
from tests.policies.conftest import NOW, devices, forecast, job


@pytest.mark.parametrize("seed", range(4))
def test_the_bound_is_never_above_the_brute_force_optimum(seed: int) -> None:
    """Three jobs on one T4 and one RTX 6000 Ada, random intensities: the LP bound is at most
    the best schedule found by trying every pool and every start on a 5-minute grid."""
    devs, fcs = small_cluster(seed)
    jobs = small_jobs(seed, 3)
    optimum = brute_force(jobs, devs, fcs, GRID_S)
    bound = lower_bound(jobs, devs, fcs)
    assert bound.jobs == 3 and not bound.unschedulable
    assert np.isfinite(optimum)
    assert bound.total_g <= optimum * (1 + 1e-9)
    assert bound.total_g >= 0.5 * optimum  # a bound, but not a vacuous one


@pytest.mark.parametrize("seed", range(3))
def test_the_bound_is_never_above_the_brute_force_optimum_with_long_runs(seed: int) -> None:
    """Runs of 35-80 minutes (several 15-minute slots, so the rows for runs that cover a slot
    boundary from every start bind) within 2-3 h: still at most the best schedule found on a
    10-minute grid."""
    devs, fcs = small_cluster(seed)
    jobs = small_jobs(seed, 3, requests=(5000, 9000), hours_range=(2.0, 3.0))
    optimum = brute_force(jobs, devs, fcs, 2 * GRID_S)
    bound = lower_bound(jobs, devs, fcs)
    assert bound.jobs == 3 and np.isfinite(optimum)
    assert bound.total_g <= optimum * (1 + 1e-9)
    assert bound.total_g >= 0.5 * optimum


def test_without_contention_the_bound_is_each_jobs_best_start() -> None:
    """With a device per job nothing competes: the bound is the sum of each job's cheapest
    start over continuous time, which a fine grid approaches from above."""
    devs, fcs = small_cluster(7, size=4)
    jobs = small_jobs(7, 3)
    singles = sum(min(o[3] for o in opts) for opts in start_options(jobs, devs, fcs, 10.0))
    bound = lower_bound(jobs, devs, fcs)
    assert bound.total_g <= singles * (1 + 1e-9)
    assert bound.total_g == pytest.approx(singles, rel=2e-3)


def test_capacity_raises_the_bound() -> None:
    """Six ~16-minute jobs within an hour on one clean T4 and one dirty RTX: the devices force
    some jobs onto the dirty GPU, so the bound is above the sum of the jobs' best starts."""
    devs = devices("qc", "CA-QC", "T4", 1) + devices("ca", "US-CAL-CISO", "RTX6000-Ada", 1)
    fcs = {"CA-QC": forecast("CA-QC", [20.0] * 12),
           "US-CAL-CISO": forecast("US-CAL-CISO", [500.0] * 12)}  # fmt: skip
    jobs = [
        JobSpec(f"j{i}", s.model, s.workload, NOW, NOW + timedelta(hours=1), regions=("qc", "ca"))
        for i, s in enumerate(job(f"j{i}", requests=2048) for i in range(6))
    ]
    alone = sum(min(o[3] for o in opts) for opts in start_options(jobs, devs, fcs, 60.0))
    bound = lower_bound(jobs, devs, fcs)
    assert bound.total_g > 1.5 * alone


def test_windows_give_a_lower_bound_too() -> None:
    devs, fcs = small_cluster(3)
    jobs = small_jobs(3, 6)
    whole = lower_bound(jobs, devs, fcs)
    windowed = lower_bound(jobs, devs, fcs, window_s=900.0)
    assert windowed.windows > 1 and whole.windows == 1
    assert windowed.total_g <= whole.total_g * (1 + 1e-9)
    assert whole.windows_g is None and whole.dual_g is None and whole.dual_steps == 0


@pytest.mark.parametrize("window_s", [0.0, -900.0, float("nan")])
def test_a_window_of_no_length_is_refused(window_s: float) -> None:
    """Arrival / 0 would put every job in one meaningless window (NaN and infinities cast to
    one integer), so 0 read as "one LP" by accident."""
    devs, fcs = small_cluster(3)
    with pytest.raises(ValueError, match="window_s must be more than 0"):
        lower_bound(small_jobs(3, 6), devs, fcs, window_s=window_s)


@pytest.mark.parametrize("seed", range(4))
def test_the_whole_spans_dual_tightens_the_windows(seed: int) -> None:
    """Twelve jobs arriving within half an hour on one device per pool, split into 5-minute
    windows: each window counts the devices again for its own jobs only, so the windows' sum is
    loose (30-73 % of the one LP); the whole span's Lagrangian dual climbs to 92-99 % of it,
    never above it."""
    devs, fcs = small_cluster(seed)
    jobs = small_jobs(seed, 12)
    whole = lower_bound(jobs, devs, fcs)
    windowed = lower_bound(jobs, devs, fcs, window_s=GRID_S)
    assert windowed.windows > 1 and windowed.windows_g is not None
    assert windowed.dual_g is not None and windowed.dual_steps > 0
    assert windowed.total_g == max(windowed.windows_g, windowed.dual_g)
    assert windowed.windows_g < 0.9 * whole.total_g  # the windows alone are loose here
    assert 0.9 * whole.total_g <= windowed.total_g <= whole.total_g * (1 + 1e-9)


def test_a_span_too_large_for_the_dual_keeps_the_windows_sum() -> None:
    devs, fcs = small_cluster(0)
    jobs = small_jobs(0, 12)
    windowed = lower_bound(jobs, devs, fcs, window_s=GRID_S, max_dual_cells=10)
    assert windowed.windows > 1 and windowed.variables > 10
    assert windowed.dual_g is None and windowed.dual_steps == 0
    assert windowed.total_g == windowed.windows_g


@pytest.mark.parametrize("seed", range(3))
def test_windows_with_the_dual_stay_below_the_brute_force_optimum(seed: int) -> None:
    devs, fcs = small_cluster(seed)
    jobs = small_jobs(seed, 3, requests=(5000, 9000), hours_range=(2.0, 3.0))
    optimum = brute_force(jobs, devs, fcs, 2 * GRID_S)
    windowed = lower_bound(jobs, devs, fcs, window_s=GRID_S)
    assert windowed.windows > 1 and windowed.dual_g is not None
    assert windowed.total_g <= optimum * (1 + 1e-9)


def test_a_job_that_cannot_meet_its_deadline_is_left_out() -> None:
    devs, fcs = small_cluster(1)
    probe = job("x")
    late = JobSpec("late", probe.model, probe.workload, NOW, NOW + timedelta(seconds=1))
    bound = lower_bound([late, *small_jobs(1, 2)], devs, fcs)
    assert bound.unschedulable == ("late",) and bound.jobs == 2


@pytest.mark.parametrize("seed", range(3))
def test_a_windows_capacity_rows_read_from_the_whole_spans_are_its_own(seed: int) -> None:
    """With the whole span's dual, each window's LP reads its rows from the whole span's
    (built once): the same matrix and right-hand side, row for row, as built for the window."""
    devs, fcs = small_cluster(seed, size=2)
    jobs = small_jobs(seed, 14)
    pools = make_pools(devs)
    estimates = estimate_matrix(jobs, pools)
    cells = _costs(jobs, pools, fcs, NOW, _cells(jobs, pools, NOW, GRID_S, estimates),
                   estimates, DEFAULT_LIFETIME_YEARS)  # fmt: skip
    sizes = np.array([pool.size for pool in pools], dtype=np.int64)
    lengths = (1, 2, 4, 8)
    whole = capacity_rows(cells, np.arange(len(cells.job)), sizes, GRID_S, lengths)
    rows = []
    for window in (cells.job < 3, (cells.job >= 3) & (cells.job < 11), cells.job >= 11):
        index = np.nonzero(window)[0]
        own_a, own_b = capacity_rows(cells, index, sizes, GRID_S, lengths)
        read_a, read_b = rows_of(whole, index)
        assert own_a.shape == read_a.shape
        assert np.array_equal(own_a.toarray(), read_a.toarray())
        assert np.array_equal(own_b, read_b)
        rows.append(own_a.shape[0])
    assert min(rows) < whole[0].shape[0]  # a window without some of the span's rows
