"""Near-ties between planning costs go to the earlier start: on a flat forecast the slot means
differ in their last bits only, and float noise must not decide a hold of hours for nothing."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest

from policies import get_policy
from policies.capacity import CapacityTimeline
from policies.estimates import estimate_matrix
from policies.greedy_reference import Tick, choose
from policies.local_search import improve
from policies.near_ties import earliest_near
from policies.planner import (
    WindowParameters,
    _rounding,
    plan_window,
    planned_cells,
)
from policies.scoring import SlotGrid, make_pools, score
from policies.types import Decision, Device, JobSpec, ZoneIntensity
from tests.policies.conftest import NOW, devices, forecast, job
from tests.policies.random_cluster import world

TICK = NOW + timedelta(minutes=7)


def _both_all(
    policy_name: str, jobs: Sequence[JobSpec], devs: Sequence[Device],
    fc: Mapping[str, ZoneIntensity], **params: object,
) -> list[Decision]:  # fmt: skip
    """The decisions of the fast path (compiled greedy) and the full re-plan (the NumPy
    reference), which must agree."""
    policy = get_policy(policy_name, **params)
    fast = policy.plan(TICK, jobs, devs, fc)
    window: WindowParameters = policy.params  # type: ignore[attr-defined]
    full = plan_window(policy.name, TICK, jobs, devs, fc, window)
    assert fast == full
    return fast


def _both(
    policy_name: str, jobs: Sequence[JobSpec], devs: Sequence[Device],
    fc: Mapping[str, ZoneIntensity], **params: object,
) -> Decision:  # fmt: skip
    """The first job's decision, as :func:`_both_all`."""
    return _both_all(policy_name, jobs, devs, fc, **params)[0]


@pytest.mark.parametrize("value", [31.0, 30.999, 17.3, 0.1])
@pytest.mark.parametrize("min_saving", [0.0, 0.2])
@pytest.mark.parametrize("policy", ["carbon-window", "wait-awhile", "carbon-lookahead"])
@pytest.mark.parametrize("busy_h", [1, 3])
def test_a_flat_forecast_plans_the_first_free_slot(
    value: float, min_saving: float, policy: str, busy_h: int
) -> None:
    """Both GPUs are busy for ``busy_h`` hours; every later slot costs the same but for float
    noise in the slot means: the job is planned for the first slot with a free GPU."""
    devs = devices("qc", "CA-QC", "T4", 2, busy_until=NOW + timedelta(hours=busy_h))
    fc = {"CA-QC": forecast("CA-QC", [value] * 40)}
    d = _both(policy, [job("a", hours=20.0, requests=2048)], devs, fc, min_saving=min_saving)
    assert d.action == "hold" and d.chosen is not None
    assert d.chosen.start == NOW + timedelta(hours=busy_h)


@pytest.mark.parametrize("policy", ["carbon-window", "wait-awhile", "carbon-lookahead"])
def test_a_real_saving_still_waits(policy: str) -> None:
    """A later slot cheaper by more than the tolerance (here 1 %) is still planned."""
    devs = devices("qc", "CA-QC", "T4", 2, busy_until=NOW + timedelta(hours=1))
    fc = {"CA-QC": forecast("CA-QC", [31.0] * 6 + [30.69] * 3 + [31.0] * 31)}
    d = _both(policy, [job("a", hours=20.0, requests=2048)], devs, fc, min_saving=0.0)
    assert d.chosen is not None and d.chosen.start == NOW + timedelta(hours=6)


@pytest.mark.parametrize("value", [31.0, 30.999, 123.4])
@pytest.mark.parametrize("busy_h", [1, 2])
def test_a_late_job_takes_the_first_safe_start_of_a_flat_forecast(
    value: float, busy_h: int
) -> None:
    """The rescue path: the job is past its latest safe start (a guard of all but 25 minutes
    of its 3 hours) and both GPUs are busy for ``busy_h`` hours; of the later starts that
    still end by its deadline with the margin, all of one cost but for float noise, it takes
    the first."""
    devs = devices("qc", "CA-QC", "T4", 2, busy_until=NOW + timedelta(hours=busy_h))
    fc = {"CA-QC": forecast("CA-QC", [value] * 40)}
    late = job("a", hours=3.0, requests=2048)
    guard_s = 3 * 3600.0 - 1500.0
    d = _both("carbon-window", [late], devs, fc, guard_s=guard_s, min_saving=0.0)
    assert d.chosen is not None and d.chosen.start == NOW + timedelta(hours=busy_h)
    assert late.deadline is not None
    latest = late.deadline - timedelta(seconds=d.chosen.duration_s * 1.25 + guard_s)
    assert latest < TICK  # the rescue path chose it, not the greedy


def test_earliest_near_takes_the_first_slot_within_the_tolerance_then_the_first_pool() -> None:
    inf = np.inf
    row = np.array([[inf, 5.0 + 6e-9, 5.0], [inf, 5.0 + 1e-9, 5.0 + 2e-9]])
    assert earliest_near(row, 1e-9) == (1, 1)  # 5 + 1e-9 is within 5e-9 of 5; pool 0's not
    assert earliest_near(row, 0.0) == (0, 2)  # no tolerance: the cheapest
    assert earliest_near(np.array([[inf, 2.0], [2.0, inf]]), 1e-9) == (1, 0)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("policy", ["carbon-window", "wait-awhile"])
def test_the_fast_path_takes_the_near_ties_the_full_replan_takes(seed: int, policy: str) -> None:
    """A random cluster on flat forecasts (near-ties in every pool and slot, tight and late
    jobs taking the rescue path): the compiled greedy decides as the NumPy reference."""
    w = world(seed, n_devices=8 + seed, n_jobs=40)
    w.flatten_forecasts()
    _both_all(policy, w.jobs, w.devices, w.forecasts)


def _moved(value: float, min_saving: float, busy_h: int, slot: int) -> tuple[str, datetime]:
    """carbon-lookahead's single-job moves (:func:`policies.local_search.improve`) for a job
    that the rounding left in a dirty zone at ``slot``, while the flat clean zone's GPU is busy
    for ``busy_h`` hours: the region and start of the cell it ends on."""
    params = WindowParameters(lookahead=True)
    devs = devices("qc", "CA-QC", "T4", 1, busy_until=NOW + timedelta(hours=busy_h))
    devs += devices("pl", "PL", "T4", 1)
    fc = {"CA-QC": forecast("CA-QC", [value] * 40), "PL": forecast("PL", [700.0] * 40)}
    jobs = [job("a", hours=20.0, requests=2048)]
    grid = SlotGrid.aligned(TICK, params.slot_s, 48)
    pools = make_pools(devs)
    duration, energy, ok = estimate_matrix(jobs, pools)
    capacity = CapacityTimeline(pools, grid, int(np.ceil(duration.max() / params.slot_s)) + 1)
    cube = score(jobs, pools, fc, grid, estimates=(duration, energy, ok))
    cost = np.where(ok[:, :, None], cube.planning_g, np.inf)
    dirty = [p.region for p in pools].index("pl")
    capacity.reserve(dirty, slot, float(duration[0, dirty]), 1)
    cells = [(0, dirty, slot, "rounded")]
    improve(cost, duration, np.ones(1, dtype=np.int64), capacity, cells, min_saving)
    ((_, p, s, _),) = cells
    return pools[p].region, grid.time(s)


@pytest.mark.parametrize("value", [31.0, 30.999, 17.3, 0.1])
@pytest.mark.parametrize("min_saving", [0.0, 0.2])
@pytest.mark.parametrize("busy_h", [1, 3])
@pytest.mark.parametrize("slot", [2, 0])
def test_the_lookaheads_local_search_moves_a_job_to_the_first_free_slot(
    value: float, min_saving: float, busy_h: int, slot: int
) -> None:
    """A job left in the dirty zone, held (slot 2) or starting now (slot 0), moves to the
    clean zone, whose later slots all cost the same but for float noise: to its first free
    slot, not to whichever the noise makes cheapest. Starting now, the move is a hold, and it
    beats the cheapest start-now cell free for the run (the dirty zone's: the clean zone's
    GPU is busy) by far more than ``min_saving``, as the greedy's hold must; until
    2026-12-07 the busy clean start-now cell was the bound, and the job stayed at 700 g/kWh."""
    assert _moved(value, min_saving, busy_h, slot) == ("qc", NOW + timedelta(hours=busy_h))


@pytest.mark.parametrize("busy_h", [1, 3])
def test_the_lookaheads_local_search_holds_a_started_job_only_for_min_saving(
    busy_h: int,
) -> None:
    """A job starting now in the dirty zone (700 g/kWh), the clean zone (600) busy for a
    while: waiting for the clean zone saves ~14 % against the free start now, a hold at
    ``min_saving`` 0 and not at 0.2."""
    assert _moved(600.0, 0.0, busy_h, 0) == ("qc", NOW + timedelta(hours=busy_h))
    assert _moved(600.0, 0.2, busy_h, 0) == ("pl", TICK)


def _weighted(weights: dict[tuple[str, int], float], values: list[float]) -> set[tuple[str, int]]:
    """The look-ahead's rounding of one job given LP ``weights`` on (region, slot) cells, in
    the NumPy reference (``greedy_reference.choose``) and compiled (``greedy.assign_weighted``),
    which must agree: the cells they take (one cell, or both where they differ). Two regions
    with the same GPU and the same forecast (``values``, hourly; 15-minute slots), so the two
    pools' cells cost the same but for float noise."""
    params = WindowParameters(lookahead=True)
    devs = devices("a", "CA-QC", "T4", 1) + devices("b", "US-CAL-CISO", "T4", 1)
    fc = {z: forecast(z, values) for z in ("CA-QC", "US-CAL-CISO")}
    jobs = [job("j", hours=20.0)]
    grid = SlotGrid.aligned(TICK, params.slot_s, 48)
    pools = make_pools(devs)
    duration, energy, ok = estimate_matrix(jobs, pools)
    capacity = CapacityTimeline(pools, grid, int(np.ceil(duration.max() / params.slot_s)) + 1)
    cube = score(jobs, pools, fc, grid, estimates=(duration, energy, ok))
    cost = np.where(ok[:, :, None], cube.planning_g, np.inf)
    tick = Tick(
        cube, cost, capacity, ok, TICK, set(), planned_cells(cube.jobs, pools, grid), fc, {}
    )
    lp = np.zeros(cost.shape)
    regions = [p.region for p in pools]
    for (region, s), w in weights.items():
        lp[0, regions.index(region), s] = w
    gpus = np.ones(1, dtype=np.int64)
    ((_, p, s, _),) = _rounding(tick, params, gpus)(copy.deepcopy(capacity), [0], lp)
    q, t, _ = choose(replace(tick, capacity=copy.deepcopy(capacity)), 0, params, lp[0])
    return {(regions[p], s), (regions[q], t)}


@pytest.mark.parametrize("value", [31.0, 30.999, 17.3])
def test_equal_lp_weights_go_to_the_earliest_start_then_the_first_pool(value: float) -> None:
    """The LP splits a job half and half between two later cells of the same (flat, clean)
    cost: the rounding takes the earlier start, whichever pool it is in, and at one start the
    first pool, as every near-tie of the planner goes; until 2026-12-07 the first pool's cell
    was taken whatever its start (ties by index, pool first), or whichever the float noise
    made cheaper."""
    values = [700.0] + [value] * 30  # start-now dear, later slots clean: the hold stands
    assert _weighted({("a", 12): 0.5, ("b", 8): 0.5}, values) == {("b", 8)}
    assert _weighted({("a", 8): 0.5, ("b", 12): 0.5}, values) == {("a", 8)}
    assert _weighted({("b", 8): 0.5, ("a", 8): 0.5}, values) == {("a", 8)}


def test_a_heavier_lp_weight_still_decides_over_an_earlier_start() -> None:
    """Weights that differ by more than the solver's noise are no tie: the heavier cell, even
    at a later start (and a cheaper cell of lighter weight does not take it either)."""
    values = [700.0] + [31.0] * 30
    assert _weighted({("a", 8): 0.4, ("b", 12): 0.6}, values) == {("b", 12)}
    assert _weighted({("a", 8): 0.5 - 1e-12, ("b", 12): 0.5}, values) == {("a", 8)}


@pytest.mark.parametrize("value", [31.0, 30.999, 17.3, 123.4])
@pytest.mark.parametrize("policy", ["carbon-window", "carbon-lookahead", "oracle"])
def test_a_started_jobs_alternatives_take_the_earliest_near_tie(value: float, policy: str) -> None:
    """The job starts now in the cleaner zone; the other zone's forecast is flat, so its slots
    cost the same but for float noise, and its alternative is its start now (free), not
    whichever later slot the noise makes cheapest (a display only, but the same rule as the
    plans: until 2026-12-07 it showed hours-later starts such as 09:00)."""
    devs = devices("qc", "CA-QC", "T4", 1) + devices("de", "DE", "T4", 1)
    fc = {"CA-QC": forecast("CA-QC", [1.0] * 40), "DE": forecast("DE", [value] * 40)}
    d = _both(policy, [job("a", hours=20.0, requests=2048)], devs, fc)
    assert d.action == "start" and d.chosen is not None and d.chosen.region == "qc"
    assert [(a.region, a.start) for a in d.alternatives] == [("de", TICK)]
