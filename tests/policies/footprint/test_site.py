"""The site model: energy balance, battery bounds, job shares, the planner's effective intensity,
and its dispatch checked against the study's own co-simulator (vessim)."""

from __future__ import annotations

import numpy as np
import pytest

from policies.footprint.accounting import J_PER_KWH, operational_g
from policies.footprint.site import (
    Battery,
    SiteError,
    SiteFactors,
    dispatch,
    effective_intensity,
    split_jobs,
)

STEP_S = 300.0


def _day(n: int = 288, peak_w: float = 4000.0) -> np.ndarray:
    """A bell-shaped PV day on 5-minute steps."""
    hours = (np.arange(n) + 0.5) * STEP_S / 3600 % 24
    return np.clip(np.sin((hours - 6) / 12 * np.pi), 0, None) * peak_w


BATTERIES = [
    None,
    Battery(capacity_kwh=5.0, charge_power_w=2000, discharge_power_w=1500,
            round_trip_efficiency=0.85, min_soc=0.2, initial_soc=0.6),
    Battery(capacity_kwh=0.5, charge_power_w=10_000, discharge_power_w=10_000,
            round_trip_efficiency=1.0, min_soc=0.0, initial_soc=1.0),
]  # fmt: skip


@pytest.mark.parametrize("battery", BATTERIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_energy_balances_at_every_step_and_the_battery_stays_in_bounds(
    battery: Battery | None, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n = 288 * 3
    pv = np.tile(_day(), 3) * rng.uniform(0.2, 1.0, n)
    gpu = rng.uniform(0, 3000, n) * (rng.random(n) < 0.6)
    other = rng.uniform(0, 800, n)
    flows = dispatch(pv, gpu, other, STEP_S, battery)
    scale = float(np.max(pv + gpu + other) * STEP_S)
    assert np.all(np.abs(flows.imbalance_j()) <= 1e-9 * scale)
    parts = flows.gpu_pv_j + flows.gpu_battery_j + flows.gpu_grid_j
    np.testing.assert_allclose(parts, flows.gpu_j, rtol=0, atol=1e-9 * scale)
    for name in ("charge_j", "discharge_j", "grid_j", "curtailed_j", "gpu_pv_j", "gpu_grid_j"):
        assert np.all(getattr(flows, name) >= -1e-9 * scale), name
    assert not np.any((flows.charge_j > 0) & (flows.discharge_j > 0))
    if battery is None:
        assert np.all(flows.charge_j == 0) and np.all(flows.discharge_j == 0)
        return
    assert np.all(flows.soc >= battery.min_soc - 1e-12)
    assert np.all(flows.soc <= 1 + 1e-12)
    assert np.all(flows.charge_j <= battery.charge_power_w * STEP_S + 1e-6)
    assert np.all(flows.discharge_j <= battery.discharge_power_w * STEP_S + 1e-6)
    # Stored energy changes by what went in times eta, minus what came out over eta.
    eta = battery.one_way_efficiency
    stored = np.diff(flows.soc) * battery.capacity_j
    np.testing.assert_allclose(
        stored, flows.charge_j * eta - flows.discharge_j / eta, atol=1e-6 * battery.capacity_j
    )
    assert flows.discharge_j.sum() > 0 and flows.charge_j.sum() > 0  # it was exercised


def test_without_pv_and_battery_every_joule_is_grid_and_grams_equal_todays() -> None:
    rng = np.random.default_rng(7)
    n = 96
    intensity = rng.uniform(100, 500, n)
    starts = rng.uniform(0, (n - 61) * STEP_S, 40)  # every run ends inside the steps
    durations = rng.uniform(60, 5 * 3600, 40)
    energy = rng.uniform(1e5, 1e7, 40)
    gpu = np.zeros(n)
    for s, d, e in zip(starts, durations, energy, strict=True):  # the jobs' own load
        k = np.arange(n)
        overlap = np.clip(np.minimum((k + 1) * STEP_S, s + d) - np.maximum(k * STEP_S, s), 0, None)
        gpu += overlap * (e / d) / STEP_S
    flows = dispatch(0.0, gpu, 0.0, STEP_S)
    np.testing.assert_array_equal(flows.grid_j, flows.gpu_j)
    assert flows.offset == 0.0
    split = split_jobs(flows, intensity, SiteFactors(), starts, durations, energy)
    np.testing.assert_array_equal(split.pv_j, 0.0)
    np.testing.assert_array_equal(split.battery_j, 0.0)
    np.testing.assert_allclose(split.grid_j, energy)
    # Today's figure: energy x the time-weighted mean intensity over the run.
    mean = np.array([
        np.sum(intensity * np.clip(np.minimum((np.arange(n) + 1) * STEP_S, s + d)
                                   - np.maximum(np.arange(n) * STEP_S, s), 0, None)) / d
        for s, d in zip(starts, durations, strict=True)
    ])  # fmt: skip
    np.testing.assert_allclose(split.operational_g, operational_g(energy, mean), rtol=1e-12)
    np.testing.assert_allclose(split.grid_intensity_g_per_kwh, mean, rtol=1e-12)


def test_a_job_in_the_sun_is_covered_and_shares_pro_rata() -> None:
    pv = np.array([0.0, 3000.0, 3000.0, 0.0])
    # two jobs of 2 kW overlap in step 1 (4 kW, 3 kW of PV), one alone in step 2
    gpu = np.array([0.0, 4000.0, 2000.0, 0.0])
    flows = dispatch(pv, gpu, 0.0, STEP_S)
    split = split_jobs(flows, 200.0, SiteFactors(pv_g_per_kwh=40.0), [300.0, 300.0],
                       [300.0, 600.0], [2000.0 * 300, 2000.0 * 600])  # fmt: skip
    np.testing.assert_allclose(split.pv_j, [0.75 * 600_000, 0.75 * 600_000 + 600_000])
    np.testing.assert_allclose(split.offset, [0.75, 1_050_000 / 1_200_000])
    expected = (split.pv_j * 40 + split.grid_j * 200) / J_PER_KWH
    np.testing.assert_allclose(split.operational_g, expected)
    assert flows.curtailed_j[2] == pytest.approx(1000 * STEP_S)


def test_other_load_takes_the_pv_first() -> None:
    flows = dispatch(1000.0, 1000.0, 600.0, STEP_S)
    assert flows.gpu_pv_j[0] == pytest.approx(400 * STEP_S)
    assert flows.gpu_grid_j[0] == pytest.approx(600 * STEP_S)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"capacity_kwh": 0.0}, "capacity_kwh"),
        ({"round_trip_efficiency": 1.2}, "round_trip_efficiency"),
        ({"min_soc": 0.5, "initial_soc": 0.3}, "initial_soc"),
        ({"charge_power_w": -1.0}, "charge_power_w"),
    ],
)
def test_bad_battery_parameters_name_the_field(kwargs: dict[str, float], field: str) -> None:
    base = {"capacity_kwh": 1.0, "charge_power_w": 1.0, "discharge_power_w": 1.0}
    with pytest.raises(SiteError, match=f"battery.{field}"):
        Battery(**{**base, **kwargs})


def test_negative_power_is_refused() -> None:
    with pytest.raises(SiteError, match="gpu_w"):
        dispatch([1.0, 2.0], [-1.0, 0.0], 0.0, STEP_S)


def test_effective_intensity_without_site_energy_is_the_grid() -> None:
    grid = np.array([300.0, 200.0, 400.0])
    eff = effective_intensity(grid, 0.0, 0.0, 0.0, 2000.0, 3600.0, SiteFactors())
    np.testing.assert_array_equal(eff, grid)


def test_effective_intensity_shares_spare_pv_over_the_free_capacity() -> None:
    grid = np.full(4, 400.0)
    pv = np.array([0.0, 1000.0, 4000.0, 6000.0])
    committed = np.array([0.0, 0.0, 1000.0, 1000.0])
    free = np.full(4, 2000.0)
    factors = SiteFactors(pv_g_per_kwh=40.0)
    eff = effective_intensity(grid, pv, 0.0, committed, free, 3600.0, factors)
    # spare PV = PV - committed: 0, 1000 (half of the free 2 kW), 3000 (all), 5000 (all)
    np.testing.assert_allclose(eff, [400.0, 220.0, 40.0, 40.0])
    # Never counted twice: any jobs filling the free capacity are priced on at most the spare.
    flows = dispatch(pv, committed, 0.0, 3600.0)
    priced_pv_j = (grid - eff) / (grid - 40.0) * free * 3600.0
    assert np.all(priced_pv_j <= flows.curtailed_j + 1e-6)


def test_effective_intensity_uses_battery_energy_no_committed_load_needs() -> None:
    battery = Battery(capacity_kwh=2.0, charge_power_w=1000, discharge_power_w=1000,
                      round_trip_efficiency=1.0, min_soc=0.0, initial_soc=1.0)  # fmt: skip
    grid = np.array([500.0, 300.0, 300.0])
    factors = SiteFactors(pv_g_per_kwh=40.0, battery_g_per_kwh=60.0)
    # 2 kWh stored, 1 kW free capacity each hour, nothing committed: the two dirtiest hours
    eff = effective_intensity(grid, 0.0, 0.0, 0.0, 1000.0, 3600.0, factors, battery)
    np.testing.assert_allclose(eff, [60.0, 60.0, 300.0])
    # The same energy is needed by committed load in the last hour: only 1 kWh is spare.
    eff = effective_intensity(grid, 0.0, 0.0, [0.0, 0.0, 1000.0], 1000.0, 3600.0, factors,
                              battery)  # fmt: skip
    np.testing.assert_allclose(eff, [60.0, 300.0, 300.0])


def test_a_short_first_step_holds_its_powers_and_limits_over_its_own_length() -> None:
    """A forecast's current step from now: 600 of its 3600 s. 2 kW of load on a battery of
    1 kW: over 600 s it delivers 600 kJ (not its 1.2 MJ of load, as a step's limit of 3.6 MJ
    would), the grid the rest, and the step balances."""
    battery = Battery(capacity_kwh=2.0, charge_power_w=1000, discharge_power_w=1000,
                      round_trip_efficiency=1.0, min_soc=0.0, initial_soc=1.0)  # fmt: skip
    flows = dispatch(0.0, [2000.0, 2000.0], 0.0, 3600.0, battery, first_step_s=600.0)
    np.testing.assert_allclose(flows.discharge_j, [600_000.0, 3_600_000.0])
    np.testing.assert_allclose(flows.grid_j, [600_000.0, 3_600_000.0])
    np.testing.assert_allclose(flows.imbalance_j(), 0.0, atol=1e-6)
    np.testing.assert_allclose(flows.soc, [1.0, 1.0 - 600_000 / 7.2e6, 1.0 - 4.2e6 / 7.2e6])
    with pytest.raises(SiteError, match="first_step_s"):
        dispatch(0.0, 1000.0, 0.0, 3600.0, battery, first_step_s=3601.0)


def test_dispatch_matches_vessims_simple_battery() -> None:
    """The study's co-simulator, on the case both model (lossless battery, one power limit,
    no other load): the same state of charge and grid energy at every step."""
    vessim = pytest.importorskip("vessim", reason="vessim (test extra) not installed")
    rng = np.random.default_rng(3)
    n = 288
    pv = _day(n) * rng.uniform(0.5, 1.0, n)
    gpu = rng.uniform(500, 2500, n)
    capacity_wh = 3000.0
    c_rate = 0.5
    ours = dispatch(pv, gpu, 0.0, STEP_S,
                    Battery(capacity_wh / 1000, c_rate * capacity_wh, c_rate * capacity_wh,
                            round_trip_efficiency=1.0, min_soc=0.2, initial_soc=0.5))  # fmt: skip
    battery = vessim.SimpleBattery("battery", capacity_wh, initial_soc=0.5, min_soc=0.2,
                                   c_rate=c_rate)  # fmt: skip
    grid = vessim.GridConnection("grid")
    policy = vessim.DefaultDispatchPolicy()
    soc, grid_j = [battery.soc()], []
    for k in range(n):
        policy.apply(pv[k] - gpu[k], STEP_S, [battery, grid])
        grid_j.append(max(-grid.current_power, 0.0) * STEP_S)
        battery.step(STEP_S)
        soc.append(battery.soc())
    np.testing.assert_allclose(ours.soc, soc, atol=1e-9)
    np.testing.assert_allclose(ours.grid_j, grid_j, rtol=1e-9, atol=1e-6)
