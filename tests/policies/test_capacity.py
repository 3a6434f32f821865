"""The capacity timeline: devices in use at each start instant, feasibility, reservations."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from policies.capacity import CapacityTimeline, _sparse_table
from policies.greedy_kernels import _reserve
from policies.scoring import Pool, SlotGrid, make_pools
from tests.policies.conftest import NOW, devices


def _one_gpu(count: int = 3) -> CapacityTimeline:
    return CapacityTimeline(make_pools(devices("a", "Z", "T4", 1)), SlotGrid(NOW, 900, count))


@pytest.mark.parametrize(
    ("busy_minutes", "busy", "load"),
    [(None, [0, 0, 0], [0, 0, 0]), (10, [1, 0, 0], [600, 0, 0]), (20, [1, 1, 0], [900, 300, 0]),
     (-5, [0, 0, 0], [0, 0, 0])],
)  # fmt: skip
def test_busy_devices_are_in_use_at_the_instants_before_their_end(
    busy_minutes: int | None, busy: list[int], load: list[float]
) -> None:
    until = None if busy_minutes is None else NOW + timedelta(minutes=busy_minutes)
    (other,) = devices("b", "Z", "T4", 1, busy_until=until)
    devs = [*devices("a", "Z", "T4", 1), replace(other, region="a")]
    timeline = CapacityTimeline(make_pools(devs), SlotGrid(NOW, 900, 3))
    assert timeline.size.tolist() == [2]
    assert timeline.busy[0].tolist() == busy
    assert timeline.load_gpu_s[0].tolist() == load


@pytest.mark.parametrize("seed", range(4))
def test_a_pools_busy_devices_add_up_one_by_one(seed: int) -> None:
    """Busy counts and loads of many busy devices (some lost) equal adding each device's in
    turn, bit for bit."""
    rng = np.random.default_rng(seed)
    ends_s = rng.uniform(-600.0, 30_000.0, 9)
    devs = [replace(d, busy_until=None if k == 0 else NOW + timedelta(seconds=float(ends_s[k])),
                    available=k != 3)
            for k, d in enumerate(devices("a", "Z", "T4", 9))]  # fmt: skip
    grid = SlotGrid(NOW - timedelta(seconds=137.25), 900, 24, 137.25)
    timeline = CapacityTimeline(make_pools(devs), grid, pad=4)
    busy = np.zeros(28, dtype=np.int64)
    load = np.zeros(28)
    for d in make_pools(devs)[0].devices:
        if d.available and d.busy_until is not None:
            end_s = (d.busy_until - grid.start).total_seconds()
            busy += timeline.offsets_s < end_s
            hi_s = (np.arange(28) + 1.0) * 900
            load += np.maximum(
                np.minimum(hi_s, end_s) - np.maximum(timeline.offsets_s, 137.25), 0.0
            )
    assert timeline.size.tolist() == [8]
    assert np.array_equal(timeline.busy[0], busy)
    assert np.array_equal(timeline.load_gpu_s[0], load)


def test_a_reservation_blocks_every_instant_its_run_covers() -> None:
    timeline = _one_gpu()
    timeline.reserve(0, 0, 1200.0)  # covers the instants at 0 and 15 min
    assert timeline.busy[0].tolist() == [1, 1, 0]
    assert timeline.feasible(np.array([1200.0])).tolist() == [[False, False, True]]
    assert timeline.feasible(np.array([60.0])).tolist() == [[False, False, True]]
    assert timeline.used_fraction()[0].tolist() == pytest.approx([1.0, 1 / 3, 0.0])


def test_a_gpu_still_running_at_a_slot_start_is_not_free_then() -> None:
    """Two GPUs busy for 20 more minutes: GPU-seconds would fit a 30-minute run from the
    15-minute slot (2 x 10 min + 2 x 15 min), but no GPU is free at that instant."""
    busy = devices("a", "Z", "T4", 2, busy_until=NOW + timedelta(minutes=20))
    timeline = CapacityTimeline(make_pools(busy), SlotGrid(NOW, 900, 4))
    assert timeline.feasible(np.array([1800.0])).tolist() == [[False, False, True, True]]


def test_runs_past_the_horizon_count_it_as_free() -> None:
    timeline = _one_gpu(2)
    assert timeline.feasible(np.array([3600.0])).tolist() == [[True, True]]
    timeline.reserve(0, 1, 3600.0)
    assert timeline.feasible(np.array([600.0])).tolist() == [[True, False]]


def test_an_aligned_grid_starts_now_and_keeps_slot_times() -> None:
    now = NOW + timedelta(minutes=10)
    grid = SlotGrid.aligned(now, 900, 3)
    assert grid.start == NOW and grid.time(0) == now and grid.time(1) == NOW + timedelta(minutes=15)
    timeline = CapacityTimeline(make_pools(devices("a", "Z", "T4", 1)), grid)
    assert timeline.offsets_s.tolist() == [600.0, 900.0, 1800.0]
    timeline.reserve(0, 0, 400.0)  # from now (10 min) to 16:40: covers the 15-min instant
    assert timeline.busy[0].tolist() == [1, 1, 0]
    assert timeline.load_gpu_s[0].tolist() == [300.0, 100.0, 0.0]


def test_a_start_now_needs_an_idle_device() -> None:
    busy = devices("a", "Z", "T4", 1, busy_until=NOW + timedelta(minutes=5))
    timeline = CapacityTimeline(make_pools(busy), SlotGrid(NOW, 900, 3))
    assert timeline.feasible(np.array([60.0])).tolist() == [[False, True, True]]
    idle = _one_gpu()
    idle.reserve(0, 0, 60.0)  # one idle device is taken by one start now
    assert idle.feasible(np.array([60.0])).tolist() == [[False, True, True]]


def test_tensor_parallel_runs_need_that_many_devices_free() -> None:
    (busy,) = devices("a", "Z", "T4", 1, busy_until=NOW + timedelta(minutes=20))
    devs = [*devices("a", "Z", "T4", 1), replace(busy, device_id="a-busy")]
    timeline = CapacityTimeline(make_pools(devs), SlotGrid(NOW, 900, 3))
    assert timeline.feasible(np.array([600.0]), gpus=1).tolist() == [[True, True, True]]
    assert timeline.feasible(np.array([600.0]), gpus=2).tolist() == [[False, False, True]]
    assert timeline.feasible(np.array([600.0]), gpus=3).tolist() == [[False, False, False]]


def test_lost_devices_give_no_capacity() -> None:
    (lost,) = devices("a", "Z", "T4", 1)
    timeline = CapacityTimeline(make_pools([replace(lost, available=False)]), SlotGrid(NOW, 900, 2))
    assert timeline.feasible(np.array([60.0])).tolist() == [[False, False]]
    assert timeline.used_fraction().tolist() == [[1.0, 1.0]]


def test_feasibility_matches_a_brute_force_check_of_every_window() -> None:
    rng = np.random.default_rng(7)
    pools = make_pools(devices("a", "Z", "T4", 3) + devices("b", "Y", "L4", 2))
    grid = SlotGrid.aligned(NOW + timedelta(minutes=4), 900, 40)
    timeline = CapacityTimeline(pools, grid, pad=12)
    for _ in range(60):
        duration = rng.uniform(0, 3 * 3600, size=2)
        gpus = int(rng.integers(1, 3))
        feasible = timeline.feasible(duration, gpus)
        for p in range(2):
            size = pools[p].size
            for s in range(grid.count):
                start = timeline.offsets_s[s]
                covered = (timeline.offsets_s >= start) & (timeline.offsets_s < start + duration[p])
                covered[s] = True
                expected = bool(timeline.busy[p, covered].max() + gpus <= size)
                assert feasible[p, s] == expected, (p, s)
        p, s = int(rng.integers(0, 2)), int(rng.integers(0, grid.count))
        if feasible[p, s]:
            timeline.reserve(p, s, float(duration[p]), gpus)
    assert timeline.busy.max() <= 3


@pytest.mark.parametrize("seed", range(6))
def test_the_compiled_reservation_equals_the_timelines(seed: int) -> None:
    """``greedy._reserve`` (which updates only what a run changes) leaves every array of the
    timeline as ``CapacityTimeline.reserve`` does (which rebuilds the pool's table), bit for
    bit, run after run: short and long runs, runs past the horizon, instant runs, an
    off-boundary first slot, pools with busy devices."""
    rng = np.random.default_rng(seed)
    ends_s = rng.uniform(-600.0, 20_000.0, 12)
    devs = [replace(d, busy_until=None if k % 3 else NOW + timedelta(seconds=float(ends_s[k])))
            for k, d in enumerate([*devices("a", "Z", "T4", 6), *devices("b", "Z", "L4", 6)])
            ]  # fmt: skip
    first_s = float(rng.choice([0.0, 137.25, 899.0]))
    grid = SlotGrid(NOW - timedelta(seconds=first_s), 900, int(rng.integers(3, 40)), first_s)
    pools = make_pools(devs)
    pad = int(rng.integers(0, 6))
    reference = CapacityTimeline(pools, grid, pad)
    compiled = CapacityTimeline(pools, grid, pad)
    c = compiled.kernel_arrays()
    for _ in range(25):
        p = int(rng.integers(len(pools)))
        s = int(rng.integers(grid.count))
        d = float(rng.choice([0.0, 1.0, 450.0, 900.0, 1800.0, 7777.7, 1e5, np.inf]))
        g = int(rng.integers(1, 3))
        reference.reserve(p, s, d, g)
        _reserve(p, s, d, g, c.offsets_s, c.hi_s, float(c.step_s), c.count, c.busy, c.levels,
                 c.widths, c.size, c.load_gpu_s, c.used, c.full_gpu_s, c.min_busy,
                 c.first_open)  # fmt: skip
        r = reference.kernel_arrays()
        for name in ("busy", "levels", "load_gpu_s", "used", "min_busy", "first_open"):
            assert getattr(c, name).tobytes() == getattr(r, name).tobytes(), name


def _numpy_arrays(pools: list[Pool], grid: SlotGrid, pad: int) -> dict[str, np.ndarray]:
    """The timeline's arrays by NumPy expressions (the constructor before its compiled pass)."""
    n_slots = grid.count + max(pad, 0)
    offsets = np.maximum(np.arange(n_slots, dtype=np.float64) * grid.step_s, grid.first_offset_s)
    hi = (np.arange(n_slots, dtype=np.float64) + 1.0) * grid.step_s
    busy = np.zeros((len(pools), n_slots), dtype=np.int64)
    load = np.zeros((len(pools), n_slots))
    size = np.zeros(len(pools), dtype=np.int64)
    for p, pool in enumerate(pools):
        available = [d for d in pool.devices if d.available]
        size[p] = len(available)
        ends = [(d.busy_until - grid.start).total_seconds()
                for d in available if d.busy_until is not None]  # fmt: skip
        if ends:
            end_s = np.array(ends)[:, None]
            busy[p] = (offsets[None, :] < end_s).sum(axis=0)
            overlap = np.maximum(
                np.minimum(hi, end_s) - np.maximum(offsets, grid.first_offset_s), 0.0
            )
            load[p] = np.cumsum(overlap, axis=0)[-1]
    level_of = np.log2(np.maximum(np.arange(n_slots + 1), 1)).astype(np.int64)
    widths = 1 << np.arange(int(level_of[-1]) + 1, dtype=np.int64)
    span_s = hi[: grid.count] - offsets[: grid.count]
    full = size[:, None] * span_s[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        used = np.where(full > 0, np.minimum(load[:, : grid.count] / full, 1.0), 1.0)
    is_full = busy[:, : grid.count] >= size[:, None]
    first_open = np.where(is_full.all(axis=1), grid.count, np.argmin(is_full, axis=1))
    return {
        "busy": busy, "levels": _sparse_table(busy, widths), "load_gpu_s": load, "size": size,
        "full_gpu_s": full, "used": used, "min_busy": busy[:, : grid.count].min(axis=1),
        "first_open": first_open.astype(np.int64), "offsets_s": offsets, "hi_s": hi,
        "widths": widths, "level_of": level_of,
    }  # fmt: skip


@pytest.mark.parametrize("seed", range(8))
def test_the_timelines_arrays_equal_the_numpy_expressions(seed: int) -> None:
    """The constructor's compiled pass against the NumPy expressions, bit for bit: busy
    devices ending before, inside and past the horizon, lost devices, an empty pool, an
    off-boundary first slot, pads."""
    rng = np.random.default_rng(seed)
    devs = []
    for region, gpu, count in (("a", "T4", 5), ("b", "L4", 7), ("c", "T4", 1), ("d", "L4", 3)):
        for k, d in enumerate(devices(region, "Z", gpu, count)):
            until = NOW + timedelta(seconds=float(rng.uniform(-2000.0, 40_000.0)))
            devs.append(replace(d, busy_until=until if rng.random() < 0.6 else None,
                                available=region != "d" or k > 0))  # fmt: skip
    devs = [d for d in devs if d.region != "c" or rng.random() < 0.5]  # sometimes no pool c
    first_s = float(rng.choice([0.0, 137.25, 899.0, 450.5]))
    grid = SlotGrid(NOW - timedelta(seconds=first_s), 900, int(rng.integers(1, 50)), first_s)
    devs[0] = replace(devs[0], busy_until=grid.start + timedelta(seconds=1800))  # an instant
    pools = list(make_pools(devs))
    pad = int(rng.integers(0, 8))
    c = CapacityTimeline(pools, grid, pad).kernel_arrays()
    for name, want in _numpy_arrays(pools, grid, pad).items():
        got = getattr(c, name)
        assert got.dtype == want.dtype and got.shape == want.shape, name
        assert got.tobytes() == want.tobytes(), name
