"""The compiled greedy (policies.greedy) against the planner's NumPy reference, choice by choice."""

from __future__ import annotations

import numpy as np
import pytest

from policies import planner
from policies.capacity import CapacityTimeline
from policies.planner import WindowParameters
from policies.scoring import SlotGrid, estimate_matrix, make_pools, score
from tests.policies.conftest import NOW
from tests.policies.random_cluster import world


def _tick(seed: int, params: WindowParameters, n_devices: int, n_jobs: int) -> planner._Tick:
    w = world(seed, n_devices, n_jobs)
    now = NOW
    grid = SlotGrid.aligned(now, params.slot_s, params.horizon_slots)
    pools = make_pools(w.devices)
    duration, energy, ok = estimate_matrix(w.jobs, pools)
    allowed = planner._allowed(w.jobs, pools, ok, params.home_only)
    cube = score(w.jobs, pools, w.forecasts, grid, duration_margin=params.duration_margin,
                 guard_s=params.guard_s, risk_aversion=params.risk_aversion,
                 estimates=(duration, energy, ok))  # fmt: skip
    cost = np.where(allowed[:, :, None], cube.planning_g, np.inf)
    longest = np.where(ok, duration, 0.0).max(initial=0.0)
    capacity = CapacityTimeline(pools, grid, int(np.ceil(longest / params.slot_s)) + 1)
    return planner._Tick(cube, cost, capacity, allowed, now, set())


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(
    "params",
    [
        WindowParameters(),
        WindowParameters(home_only=True, herd_penalty=0.0, min_saving=0.0, risk_aversion=0.0),
        WindowParameters(herd_penalty=0.5, slot_s=600, horizon_slots=40),
    ],
    ids=["carbon-window", "wait-awhile", "heavy-herding"],
)
def test_compiled_greedy_chooses_as_the_numpy_reference(
    seed: int, params: WindowParameters
) -> None:
    # Few devices and many jobs: pools fill, so the rescue path is taken too.
    reference, compiled = (_tick(seed, params, 6 + seed % 5, 30 + 10 * seed) for _ in range(2))
    order = [j for j in range(len(reference.cube.jobs)) if reference.cube.admissible[j].any()]
    expected = [planner._choose(reference, j, params) for j in order]
    got = planner._assign_compiled(compiled, order, params)
    assert got == expected
    for name in ("busy", "load_gpu_s"):
        assert np.array_equal(getattr(reference.capacity, name), getattr(compiled.capacity, name))
    assert np.array_equal(reference.capacity.used_fraction(), compiled.capacity.used_fraction())
