"""Slot 0 scored in one compiled pass into the kept rows: the cube's slot 0, bit for bit."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from policies.estimates import estimate_matrix
from policies.now_cells import regret_rows, score_cells_now
from policies.planner import _regret
from policies.scoring import SlotGrid, horizon_means, make_pools, now_means, score, typical_g
from tests.policies.conftest import NOW
from tests.policies.random_cluster import world


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("risk", [0.0, 0.5])
def test_slot_zero_in_the_rows_is_the_cubes(seed: int, risk: float) -> None:
    """Jobs in scattered rows of larger arrays (some pools not allowed, some jobs without a
    deadline, forecasts with a bound for even seeds): each row's cost, intensity and latest start
    are the cube's slot 0, its cheapest cost ``np.minimum`` of the later ones' and slot 0's;
    rows not scored are left alone."""
    w = world(seed, n_devices=9, n_jobs=60, hedged=seed % 2 == 0)
    rng = np.random.default_rng(seed)
    grid = SlotGrid.aligned(NOW + timedelta(minutes=7, seconds=13), 900, 12)
    pools = make_pools(w.devices)
    duration, energy, ok = estimate_matrix(w.jobs, pools)
    margin, guard_s = 0.25, 900.0
    cube = score(w.jobs, pools, w.forecasts, grid, estimates=(duration, energy, ok),
                 duration_margin=margin, guard_s=guard_s, risk_aversion=risk)  # fmt: skip
    n_jobs, n_pools = duration.shape
    at = rng.permutation(2 * n_jobs)[:n_jobs]  # each job's row among twice as many
    allowed = ok & (rng.random(ok.shape) < 0.8)

    def rows(values: np.ndarray, fill: float | bool) -> np.ndarray:  # type: ignore[type-arg]
        out = np.full((2 * n_jobs, *values.shape[1:]), fill, dtype=values.dtype)
        out[at] = values
        return out

    left = [math.inf if j.deadline is None else (j.deadline - grid.start).total_seconds()
            for j in w.jobs]  # fmt: skip
    lower_rest = rng.choice([1.0, 50.0, np.inf, np.nan], size=(2 * n_jobs, n_pools))
    outputs = tuple(np.full((2 * n_jobs, n_pools), -7.0) for _ in range(4))
    mean, upper = now_means(pools, w.forecasts, grid, duration, risk)
    score_cells_now(
        at, (rows(duration, np.inf), rows(energy, np.inf), rows(ok, False),
             rows(allowed, False), rows(cube.embodied_g, 0.0), rows(np.array(left), np.inf)),
        mean, upper, np.array([p.pue for p in pools]), first_offset_s=grid.offsets_s[0],
        duration_margin=margin, guard_s=guard_s, risk_aversion=risk,
        outputs=(outputs[0], outputs[1], outputs[2], lower_rest, outputs[3]),
    )  # fmt: skip
    cost, intensity, latest, lower = (o[at] for o in outputs)
    expected = np.where(allowed, cube.planning_g[:, :, 0], np.inf)
    assert np.array_equal(cost, expected)
    assert np.array_equal(intensity, cube.intensity_g_per_kwh[:, :, 0])
    assert np.array_equal(latest, cube.latest_start_s)
    assert np.array_equal(lower, np.minimum(lower_rest[at], expected), equal_nan=True)
    untouched = np.setdiff1d(np.arange(2 * n_jobs), at)
    assert all((o[untouched] == -7.0).all() for o in outputs)
    assert np.isfinite(cost).any() and not np.isfinite(cost).all()
    assert any(j.deadline is None for j in w.jobs)
    assert (upper is not None) == (seed % 2 == 0 and risk > 0)


def test_without_bounds_only_slot_zero_is_written() -> None:
    """Empty ``lower_rest`` and ``lower``: the cheapest costs are not asked for."""
    w = world(0, n_devices=4, n_jobs=5, hedged=False)
    grid = SlotGrid.aligned(NOW, 900, 4)
    pools = make_pools(w.devices)
    duration, energy, ok = estimate_matrix(w.jobs, pools)
    cube = score(w.jobs, pools, w.forecasts, grid, estimates=(duration, energy, ok))
    mean, upper = now_means(pools, w.forecasts, grid, duration)
    left = np.array([math.inf if j.deadline is None else (j.deadline - grid.start).total_seconds()
                     for j in w.jobs])  # fmt: skip
    cost, intensity, latest = (np.empty(duration.shape) for _ in range(3))
    empty = np.empty((0, len(pools)))
    score_cells_now(np.arange(5), (duration, energy, ok, ok, cube.embodied_g, left), mean, upper,
                    np.array([p.pue for p in pools]), first_offset_s=grid.offsets_s[0],
                    duration_margin=0.0, guard_s=0.0, risk_aversion=0.0,
                    outputs=(cost, intensity, latest, empty, empty))  # fmt: skip
    assert np.array_equal(cost, cube.planning_g[:, :, 0])
    assert np.array_equal(latest, cube.latest_start_s)


@pytest.mark.parametrize("seed", range(4))
def test_regret_in_the_rows_is_the_typical_grams_regret(seed: int) -> None:
    """``planner._regret`` of the allowed typical grams, for jobs in scattered rows: pools not
    allowed, jobs that fit one pool or none, pools of equal grams (a regret of 0)."""
    w = world(seed, n_devices=9, n_jobs=80)
    rng = np.random.default_rng(seed)
    grid = SlotGrid.aligned(NOW + timedelta(minutes=7, seconds=13), 900, 12)
    pools = make_pools(w.devices)
    duration, energy, ok = estimate_matrix(w.jobs, pools)
    allowed = ok & (rng.random(ok.shape) < 0.7)
    allowed[:5] = False
    allowed[5:10] = ok[5:10] & (np.cumsum(ok[5:10], axis=1) == 1)  # the first admissible only
    typical = typical_g(w.jobs, pools, w.forecasts, grid, (duration, energy, ok))
    expected = _regret(np.where(allowed, typical, np.inf))
    embodied = score(w.jobs, pools, w.forecasts, grid, estimates=(duration, energy, ok)).embodied_g
    n = len(w.jobs)
    at = rng.permutation(2 * n)[:n]

    def rows(values: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
        out = np.zeros((2 * n, *values.shape[1:]), dtype=values.dtype)
        out[at] = values
        return out

    regret = regret_rows(at, rows(energy), rows(ok), rows(allowed), rows(embodied),
                         horizon_means(pools, w.forecasts, grid),
                         np.array([p.pue for p in pools]))  # fmt: skip
    assert np.array_equal(regret, expected)
    assert (
        (regret == 0).any()
        and np.isinf(regret).any()
        and (np.isfinite(regret) & (regret > 0)).any()
    )
