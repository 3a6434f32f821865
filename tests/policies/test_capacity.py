"""The fluid capacity timeline: free GPU-seconds, feasibility and reservations."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from policies.capacity import CapacityTimeline
from policies.scoring import SlotGrid, make_pools
from tests.policies.conftest import NOW, devices


@pytest.mark.parametrize(
    ("busy_minutes", "expected"),
    [(None, [1800, 1800, 1800]), (10, [1200, 1800, 1800]), (20, [900, 1500, 1800]),
     (-5, [1800, 1800, 1800])],
)  # fmt: skip
def test_busy_devices_free_up_mid_slot(busy_minutes: int | None, expected: list[float]) -> None:
    busy = None if busy_minutes is None else NOW + timedelta(minutes=busy_minutes)
    devs = devices("a", "Z", "T4", 1) + [
        d.__class__(d.device_id + "b", d.region, d.zone, d.gpu, d.pue, busy)
        for d in devices("a", "Z", "T4", 1)
    ]
    timeline = CapacityTimeline(make_pools(devs), SlotGrid(NOW, 900, 3))
    assert timeline.free[0].tolist() == expected


def test_reservations_fill_slots_in_order_and_block_later_jobs() -> None:
    timeline = CapacityTimeline(make_pools(devices("a", "Z", "T4", 1)), SlotGrid(NOW, 900, 3))
    need = np.array([1200.0])
    slots = timeline.slots_for(np.array([1200.0]))
    assert slots.tolist() == [2]
    assert timeline.feasible(need, slots).tolist() == [[True, True, True]]
    timeline.reserve(0, 0, 1200.0)
    assert timeline.free[0].tolist() == [0.0, 600.0, 900.0]
    assert timeline.feasible(need, slots).tolist() == [[False, True, True]]
    assert timeline.used_fraction()[0].tolist() == pytest.approx([1.0, 1 / 3, 0.0])


def test_runs_past_the_horizon_count_it_as_free() -> None:
    timeline = CapacityTimeline(make_pools(devices("a", "Z", "T4", 1)), SlotGrid(NOW, 900, 2))
    assert timeline.feasible(np.array([3600.0]), np.array([4])).tolist() == [[True, True]]


def test_an_aligned_grid_starts_now_and_keeps_slot_times() -> None:
    now = NOW + timedelta(minutes=10)
    grid = SlotGrid.aligned(now, 900, 3)
    assert grid.start == NOW and grid.time(0) == now and grid.time(1) == NOW + timedelta(minutes=15)
    timeline = CapacityTimeline(make_pools(devices("a", "Z", "T4", 1)), grid)
    assert timeline.free[0].tolist() == [300.0, 900.0, 900.0]
    assert timeline.used_fraction()[0].tolist() == [0.0, 0.0, 0.0]


def test_a_start_now_needs_an_idle_device() -> None:
    busy = devices("a", "Z", "T4", 1, busy_until=NOW + timedelta(minutes=5))
    timeline = CapacityTimeline(make_pools(busy), SlotGrid(NOW, 900, 3))
    assert timeline.free[0, 0] == 600.0  # GPU-seconds later in the slot...
    assert timeline.feasible(np.array([60.0]), np.array([1])).tolist() == [[False, True, True]]
    idle = CapacityTimeline(make_pools(devices("a", "Z", "T4", 1)), SlotGrid(NOW, 900, 3))
    idle.reserve(0, 0, 60.0)  # ... and one idle device is taken by one start
    assert idle.feasible(np.array([60.0]), np.array([1])).tolist() == [[False, True, True]]
