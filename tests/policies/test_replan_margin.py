"""``replan_margin``: a held job keeps its plan unless a cell cheaper by more than the margin
is free, so plans do not trade cells of almost the same cost from tick to tick."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from policies import get_policy
from policies.planner import WindowParameters, plan_window, planned_cells
from policies.scoring import SlotGrid, make_pools
from policies.types import Decision, PlannedStart
from tests.policies.conftest import NOW
from tests.policies.random_cluster import World, world


def test_a_plan_maps_to_its_pool_and_a_later_slot_of_the_grid() -> None:
    w = world(0, n_devices=8, n_jobs=6)
    pools = make_pools(w.devices)
    grid = SlotGrid.aligned(NOW + timedelta(minutes=7), 900, 8)
    p = pools[2]
    plans = [
        PlannedStart(p.region, p.gpu.name, grid.time(3)),  # pool 2, slot 3
        None,  # no plan
        PlannedStart("nowhere", p.gpu.name, grid.time(3)),  # its pool is gone
        PlannedStart(p.region, p.gpu.name, grid.time(0)),  # its start has come
        PlannedStart(p.region, p.gpu.name, grid.time(3) + timedelta(seconds=1)),  # off-slot
        PlannedStart(p.region, p.gpu.name, grid.time(7) + timedelta(seconds=900)),  # past
    ]
    jobs = [replace(j, planned=plan) for j, plan in zip(w.jobs, plans, strict=True)]
    pool, slot = planned_cells(jobs, pools, grid)
    assert pool.tolist() == [2, -1, -1, -1, -1, -1]
    assert slot.tolist() == [3, -1, -1, -1, -1, -1]


def test_a_plan_takes_no_part_in_a_jobs_equality() -> None:
    job = world(1, n_jobs=1).jobs[0]
    planned = replace(job, planned=PlannedStart("r0", "T4", NOW))
    assert planned == job and hash(planned) == hash(job)


def _moved(decisions: list[Decision], w: World) -> int:
    """Held jobs whose cell is not the plan they came with."""
    plans = {j.job_id: j.planned for j in w.jobs}
    moved = 0
    for d in decisions:
        plan = plans[d.job_id]
        if d.action == "hold" and d.chosen is not None and plan is not None:
            moved += (d.chosen.region, d.chosen.gpu, d.chosen.start) != (
                plan.region, plan.gpu, plan.start
            )  # fmt: skip
    return moved


@pytest.mark.parametrize("seed", range(4))
def test_held_jobs_move_less_with_a_margin_and_both_paths_agree(seed: int) -> None:
    """One tick plans the queue; its held plans go back into the specs; the next tick sees a
    slightly different forecast. With a margin fewer held jobs move than without, and the
    fast path decides as the full re-plan either way."""
    w = world(seed, n_devices=10 + seed, n_jobs=60)
    first = NOW + timedelta(minutes=7)
    decisions = get_policy("carbon-window", replan_margin=0.0).plan(
        first, w.jobs, w.devices, w.forecasts
    )
    w.keep_plans(decisions)
    w.jobs = [j for j in w.jobs if j.planned is not None]  # the held jobs
    for zone, forecast in w.forecasts.items():  # the next forecast: within 3 % of the last
        noise = 1.0 + 0.03 * (w.rng.random(len(forecast.values_g_per_kwh)) * 2 - 1)
        w.forecasts[zone] = replace(forecast, values_g_per_kwh=forecast.values_g_per_kwh * noise)
    now = first + timedelta(minutes=1)
    moved = {}
    for margin in (0.0, 0.05):
        policy = get_policy("carbon-window", replan_margin=margin)
        fast = policy.plan(now, w.jobs, w.devices, w.forecasts)
        params: WindowParameters = policy.params  # type: ignore[attr-defined]
        full = plan_window(policy.name, now, w.jobs, w.devices, w.forecasts, params)
        assert fast == full
        moved[margin] = _moved(fast, w)
    assert moved[0.0] > 0
    assert moved[0.05] < moved[0.0]
