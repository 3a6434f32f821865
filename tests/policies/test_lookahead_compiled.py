"""The look-ahead's compiled loops decide as the NumPy references, bit for bit: its rounding
(``greedy_reference.choose`` job after job, with and without the LP's weights) and the local
search after it (``local_search.improve``)."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import timedelta

import numpy as np
import numpy.typing as npt
import pytest

from policies import get_policy
from policies.capacity import CapacityTimeline, covered_instants
from policies.estimates import estimate_matrix
from policies.greedy_reference import Tick, choose
from policies.local_search import improve
from policies.lookahead import preferred_cells
from policies.near_ties import earliest_near
from policies.planner import (
    WindowParameters,
    _rounding,
    allowed_pairs,
    planned_cells,
)
from policies.run_now_claims import run_now_cells
from policies.scoring import SlotGrid, make_pools, score
from tests.policies.conftest import NOW, devices
from tests.policies.random_cluster import world

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Cells = list[tuple[int, int, int, str]]


def _improve_reference(
    cost: FloatArray, duration_s: FloatArray, gpus: IntArray, capacity: CapacityTimeline,
    cells: Cells, min_saving: float, passes: int = 2,
) -> int:  # fmt: skip
    """``local_search.improve`` as NumPy expressions per job (before it was compiled)."""
    n_pools, n_slots = cost.shape[1:]
    slots = np.broadcast_to(np.arange(n_slots), (n_pools, n_slots))
    least = cost.reshape(len(cost), -1).min(axis=1, initial=np.inf)
    movable = [
        i for i, (k, p, s, _) in enumerate(cells) if np.isfinite(cost[k, p, s])
        and cost[k, p, s] > least[k] * (1.0 + 1e-9)
    ]  # fmt: skip
    if not movable:
        return 0
    ends = {}
    for i in movable:
        k = cells[i][0]
        _, end = covered_instants(capacity, slots.ravel(), np.repeat(duration_s[k], n_slots))
        ends[i] = end.reshape(n_pools, n_slots)
    width = max(int((end - slots).max(initial=1)) for end in ends.values())
    inside = {
        i: np.arange(width)[None, None, :] < (end - slots)[:, :, None] for i, end in ends.items()
    }
    busy = np.pad(capacity.busy, ((0, 0), (0, width)))
    windows = np.lib.stride_tricks.sliding_window_view(busy, width, axis=1)[:, :n_slots]
    size = capacity.size[:, None]
    moves = 0
    for _ in range(passes):
        moved = False
        for i in movable:
            k, p, s, note = cells[i]
            end = ends[i]
            busy[p, s : end[p, s]] -= gpus[k]
            in_use = np.where(inside[i], windows, 0).max(axis=2)
            row = np.where(in_use + gpus[k] <= size, cost[k], np.inf)
            if s == 0:
                hold_below = (1.0 - min_saving - 1e-9) * float(row[:, 0].min())  # free now
                row[:, 1:] = np.where(row[:, 1:] < hold_below, row[:, 1:], np.inf)
            q, t = (int(x) for x in np.unravel_index(int(np.argmin(row)), row.shape))
            if row[q, t] < np.inf:  # finite, no NaN: of the near-ties, the earliest start
                q, t = earliest_near(row, 1e-9)
            if row[q, t] < cost[k, p, s] * (1.0 - 1e-9):
                cells[i] = (k, q, t, note)
                moves += 1
                moved = True
            else:
                q, t = p, s
            busy[q, t : end[q, t]] += gpus[k]
        if not moved:
            break
    return moves


def _instance(seed: int) -> tuple[FloatArray, FloatArray, IntArray, CapacityTimeline, Cells]:
    """Jobs reserved on random cells of a tight cluster (some pools over-committed, as a rescue
    can leave them), with random costs: ``inf`` where not allowed, ties and repeated values."""
    rng = np.random.default_rng(seed)
    devs = (
        devices("a", "CA-QC", "T4", int(rng.integers(1, 3)))
        + devices("b", "US-CAL-CISO", "L4", int(rng.integers(1, 3)))
        + devices("c", "DE", "A100-40GB", 1, busy_until=NOW + timedelta(minutes=40))
    )
    grid = SlotGrid.aligned(NOW + timedelta(minutes=int(rng.integers(0, 15))), 900, 12)
    pools = make_pools(devs)
    n_jobs, n_pools = int(rng.integers(1, 14)), len(pools)
    duration = rng.choice([300.0, 900.0, 1000.0, 2700.0, 5000.0, np.inf], (n_jobs, n_pools))
    gpus = rng.choice([1, 1, 1, 2], n_jobs).astype(np.int64)
    capacity = CapacityTimeline(pools, grid, int(np.ceil(5000.0 / 900)) + 1)
    values = rng.choice([10.0, 20.0, 20.0, 35.5, 50.0], (n_jobs, n_pools, grid.count))
    values *= rng.choice([1.0, 1.0, 0.9], values.shape)  # within min_saving of another
    cost = np.where(rng.random(values.shape) < 0.2, np.inf, values * rng.uniform(0.5, 2.0))
    cost[~np.isfinite(duration)] = np.inf
    cells: Cells = []
    for k in range(n_jobs):
        p, s = int(rng.integers(0, n_pools)), int(rng.integers(0, grid.count))
        capacity.reserve(p, s, float(duration[k, p]), int(gpus[k]))
        cells.append((k, p, s, f"note {k}"))
    return cost, duration, gpus, capacity, cells


@pytest.mark.parametrize("seed", range(60))
@pytest.mark.parametrize("min_saving", [0.0, 0.2])
def test_the_compiled_local_search_moves_as_the_reference(seed: int, min_saving: float) -> None:
    """The same moves, cells and notes as the NumPy reference, and the timeline untouched."""
    cost, duration, gpus, capacity, cells = _instance(seed)
    busy = capacity.busy.copy()
    expected = list(cells)
    moves = _improve_reference(cost, duration, gpus, copy.deepcopy(capacity), expected,
                               min_saving)  # fmt: skip
    assert improve(cost, duration, gpus, capacity, cells, min_saving) == moves
    assert cells == expected
    assert (capacity.busy == busy).all()


def _busy(
    capacity: CapacityTimeline, duration: FloatArray, gpus: IntArray, before: Cells, after: Cells
) -> IntArray:
    """``capacity.busy`` (``before``'s runs reserved) with ``before``'s runs replaced by
    ``after``'s, instant by instant as ``CapacityTimeline.reserve`` covers them."""
    busy = capacity.busy.copy()
    for cells, sign in ((before, -1), (after, 1)):
        for k, p, s, _ in cells:
            _, end = covered_instants(capacity, np.array([s]), np.array([duration[k, p]]))
            busy[p, s : int(end[0])] += sign * int(gpus[k])
    return busy


@pytest.mark.parametrize("seed", range(60))
@pytest.mark.parametrize("min_saving", [0.0, 0.2])
def test_the_local_search_puts_no_run_where_its_devices_are_not_free(
    seed: int, min_saving: float
) -> None:
    """After the moves no pool runs more devices at an instant than it has, except where the
    plan given already did (a rescue can over-commit a pool): a move (a hold included) takes
    only devices free for the whole run."""
    cost, duration, gpus, capacity, cells = _instance(seed)
    before = list(cells)
    improve(cost, duration, gpus, capacity, cells, min_saving)
    busy = _busy(capacity, duration, gpus, before, cells)
    assert (busy <= np.maximum(capacity.size[:, None], capacity.busy)).all()
    moved = [a for a, b in zip(cells, before, strict=True) if a != b]
    for k, p, s, _ in moved:
        _, end = covered_instants(capacity, np.array([s]), np.array([duration[k, p]]))
        assert (busy[p, s : int(end[0])] <= capacity.size[p]).all()


def test_some_instances_move_jobs() -> None:
    """The instances above exercise moves, not only plans left as they are."""
    moved = 0
    for seed in range(60):
        cost, duration, gpus, capacity, cells = _instance(seed)
        moved += improve(cost, duration, gpus, capacity, cells, 0.0) > 0
    assert moved >= 20


def _tick(
    seed: int, params: WindowParameters, flat: bool = False
) -> tuple[Tick, IntArray, list[int]]:
    """A tick of a random cluster as ``plan_window`` builds it for the look-ahead (one chunk),
    its jobs' devices and their planning order (the jobs that fit); half the jobs come with
    the plans a first tick held them to. ``flat``: flat forecasts (near-ties everywhere)."""
    w = world(seed, n_devices=9, n_jobs=30, hedged=seed % 2 == 0)
    if flat:
        w.flatten_forecasts()
    first = get_policy("carbon-window").plan(NOW, w.jobs, w.devices, w.forecasts)
    w.keep_plans(first[: len(first) // 2])
    now = NOW + timedelta(minutes=int(np.random.default_rng(seed).integers(1, 20)))
    grid = SlotGrid.aligned(now, params.slot_s, 24)
    pools = make_pools(w.devices)
    duration, energy, ok = estimate_matrix(w.jobs, pools)
    allowed = allowed_pairs(w.jobs, pools, ok, params.home_only)
    longest = np.where(ok, duration, 0.0).max(initial=0.0)
    capacity = CapacityTimeline(pools, grid, int(np.ceil(longest / params.slot_s)) + 1)
    cube = score(
        w.jobs, pools, w.forecasts, grid, lifetime_years=params.lifetime_years,
        duration_margin=params.duration_margin, guard_s=params.guard_s,
        risk_aversion=params.risk_aversion, estimates=(duration, energy, ok),
    )  # fmt: skip
    cost = np.where(allowed[:, :, None], cube.planning_g, np.inf)
    plans = planned_cells(cube.jobs, pools, grid)
    cells = run_now_cells(pools, grid, w.jobs, duration, ok)  # the round's run-now claims
    tick = Tick(cube, cost, capacity, allowed, now, set(), plans, w.forecasts, cells)
    gpus = np.array([j.workload.tensor_parallel for j in w.jobs], dtype=np.int64)
    order = [int(k) for k in np.random.default_rng(seed).permutation(len(w.jobs)) if ok[k].any()]
    return tick, gpus, order


def _weights(seed: int, tick: Tick, gpus: IntArray) -> FloatArray:
    """The LP's weights for even seeds; for odd ones random sparse weights with ties, rows
    without weight, rows of weights below the 1e-6 that counts as none and rows just above."""
    if seed % 2 == 0:
        lp = preferred_cells(tick.cost, tick.cube.duration_s, gpus, tick.capacity)
        assert lp is not None
        return lp
    rng = np.random.default_rng(seed)
    weights = rng.choice([0.0, 0.0, 0.0, 0.25, 0.5, 1.0], tick.cost.shape)
    weights[rng.random(len(weights)) < 0.2] = 0.0
    weights[rng.random(len(weights)) < 0.2] *= 1e-7
    weights[rng.random(len(weights)) < 0.2] *= 1e-5  # 2.5e-6 to 1e-5: above it
    return weights


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize(
    "params",
    [WindowParameters(lookahead=True),
     WindowParameters(lookahead=True, herd_penalty=0.0, min_saving=0.0, replan_margin=0.05),
     WindowParameters(lookahead=True, herd_penalty=0.5, home_only=True, urgent_s=0.0)],
    ids=["defaults", "no-herd-replan", "herd-home"],
)  # fmt: skip
def test_the_compiled_rounding_decides_as_choose(seed: int, params: WindowParameters) -> None:
    """Job after job on copies of one timeline: the same cells and notes as ``choose``, with
    and without weights, and the same devices, loads and used shares left reserved."""
    _rounds_as_choose(*_tick(seed, params), seed, params)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    "params",
    [WindowParameters(lookahead=True),
     WindowParameters(lookahead=True, herd_penalty=0.0, min_saving=0.0, replan_margin=0.05)],
    ids=["defaults", "no-herd-replan"],
)  # fmt: skip
def test_the_compiled_rounding_takes_the_near_ties_choose_takes(
    seed: int, params: WindowParameters
) -> None:
    """The same on flat forecasts, where every slot is a near-tie of the others: the compiled
    greedy and rescue path take the same earliest cells as the NumPy reference."""
    _rounds_as_choose(*_tick(seed, params, flat=True), seed, params)


def _rounds_as_choose(
    tick: Tick, gpus: IntArray, order: list[int], seed: int, params: WindowParameters
) -> None:
    rounding = _rounding(tick, params, gpus)
    for weights in (None, _weights(seed, tick, gpus)):
        working = copy.deepcopy(tick.capacity)
        expected = []
        for k in order:
            ref = replace(tick, capacity=working, taken=set())
            p, s, note = choose(ref, k, params, None if weights is None else weights[k])
            expected.append((k, p, s, note))
        compiled = copy.deepcopy(tick.capacity)
        assert rounding(compiled, order, weights) == expected
        assert (compiled.busy == working.busy).all()
        assert (compiled.load_gpu_s == working.load_gpu_s).all()
        assert (compiled.used_fraction() == working.used_fraction()).all()
