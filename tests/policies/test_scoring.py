"""The vectorised scorer agrees with the scalar path and applies constraints and deadlines."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pytest

from policies.candidates import estimate_on
from policies.estimates import estimate_matrix
from policies.means import mean_intensities
from policies.placement import mean_intensity_g_per_kwh, place
from policies.scoring import (
    MissingForecastError,
    SlotGrid,
    make_pools,
    score,
    typical_g,
)
from tests.policies.conftest import NOW, devices, forecast, job


@pytest.mark.parametrize(
    ("offset_s", "duration_s"),
    [(0, 3600), (1800, 600), (-7200, 3600), (-600, 1200), (10 * 3600, 7200), (5400, 0),
     (-100, 0), (3599, 2), (0, 5 * 3600)],
)  # fmt: skip
def test_mean_intensities_match_the_scalar_mean(offset_s: float, duration_s: float) -> None:
    fc = forecast("Z", [100.0, 300.0, 50.0, 200.0])
    scalar = mean_intensity_g_per_kwh(fc, NOW + timedelta(seconds=offset_s), duration_s)
    vector = mean_intensities(
        fc.values_g_per_kwh, 3600, 0.0, np.array([offset_s], float), np.array([duration_s], float)
    )
    assert vector[0] == pytest.approx(scalar, rel=1e-12)


@pytest.mark.parametrize("pue", [1.0, 1.4])
@pytest.mark.parametrize("slot", [0, 3, 7, 20])
def test_cube_agrees_with_scalar_place(pue: float, slot: int) -> None:
    devs = devices("qc", "CA-QC", "T4", 2, pue) + devices("ca", "US-CAL-CISO", "RTX6000-Ada", 1)
    fcs = {
        "CA-QC": forecast("CA-QC", [30.0, 35.0, 28.0] * 10, start=NOW - timedelta(minutes=20)),
        "US-CAL-CISO": forecast("US-CAL-CISO", list(np.linspace(100, 400, 30)), step_s=1800),
    }
    far = 1000.0  # every slot of the grid is before the latest safe start
    served = dataclasses.replace(job("c", hours=far), runtime="vllm")  # calibrated serving path
    jobs = [job("a", hours=far), job("b", hours=far, requests=4000, model="llama-3b"), served]
    pools = make_pools(devs)
    grid = SlotGrid(NOW, 900, 24)
    cube = score(jobs, pools, fcs, grid)
    for j, spec in enumerate(jobs):
        for p, pool in enumerate(pools):
            est = estimate_on(spec, pool.devices[0])
            alt = place(est, pool.devices[:1], grid.time(slot), fcs[pool.zone], 5.0)
            assert cube.total_g[j, p, slot] == pytest.approx(alt.total_g, rel=1e-9)
            assert cube.intensity_g_per_kwh[j, p, slot] == pytest.approx(
                alt.intensity_g_per_kwh, rel=1e-9
            )
            assert cube.embodied_g[j, p] == pytest.approx(alt.embodied_g, rel=1e-12)


class CountingCache(dict[tuple[object, ...], object]):
    def __init__(self) -> None:
        super().__init__()
        self.stores = 0

    def __setitem__(self, key: tuple[object, ...], value: object) -> None:
        self.stores += 1
        super().__setitem__(key, value)


def test_estimates_are_computed_once_per_job_and_gpu_type() -> None:
    devs = (
        devices("qc", "CA-QC", "T4", 3)
        + devices("on", "CA-ON", "T4", 2)
        + devices("ca", "US-CAL-CISO", "RTX6000-Ada", 2)
    )
    fcs = {z: forecast(z, [100.0] * 4) for z in ("CA-QC", "CA-ON", "US-CAL-CISO")}
    cache = CountingCache()
    jobs = [job("a"), job("b"), job("c", requests=100)]
    score(jobs, make_pools(devs), fcs, SlotGrid(NOW, 900, 4), cache=cache)  # type: ignore[arg-type]
    assert cache.stores == 4  # two distinct workloads x two GPU types
    score(jobs, make_pools(devs), fcs, SlotGrid(NOW, 900, 4), cache=cache)  # type: ignore[arg-type]
    assert cache.stores == 4


@pytest.mark.parametrize(
    ("kwargs", "admissible"),
    [
        ({}, [True, True]),
        ({"regions": ("qc",)}, [False, True]),
        ({"model": "llama-70b"}, [False, False]),  # out of memory everywhere
    ],
)
def test_admissibility(kwargs: dict[str, object], admissible: list[bool]) -> None:
    devs = devices("qc", "CA-QC", "T4", 1) + devices("ca", "US-CAL-CISO", "RTX6000-Ada", 1)
    fcs = {z: forecast(z, [100.0]) for z in ("CA-QC", "US-CAL-CISO")}
    cube = score([job("a", **kwargs)], make_pools(devs), fcs, SlotGrid(NOW, 900, 2))  # type: ignore[arg-type]
    assert cube.admissible[0].tolist() == admissible
    assert np.isinf(cube.total_g[0][~np.array(admissible)]).all()


@pytest.mark.parametrize(("margin", "guard_s"), [(0.0, 0.0), (0.0, 900.0), (20.0, 0.0)])
def test_latest_safe_start_masks_late_slots(margin: float, guard_s: float) -> None:
    devs = devices("qc", "CA-QC", "T4", 1)
    spec = job("a", hours=2.0 + 2 / 60)
    duration = estimate_on(spec, devs[0]).duration_s
    latest = 2 * 3600 + 120 - duration * (1 + margin) - guard_s
    cube = score([spec], make_pools(devs), {"CA-QC": forecast("CA-QC", [30.0])},
                 SlotGrid(NOW, 900, 12), duration_margin=margin, guard_s=guard_s)  # fmt: skip
    allowed = np.flatnonzero(np.isfinite(cube.total_g[0, 0]))
    assert allowed.tolist() == list(range(int(latest // 900) + 1))
    assert cube.latest_start_s[0, 0] == pytest.approx(latest)


def test_risk_aversion_plans_on_the_pessimistic_bound() -> None:
    devs = devices("qc", "CA-QC", "T4", 1)
    fcs = {"CA-QC": forecast("CA-QC", [100.0] * 4, upper=[200.0] * 4)}
    grid = SlotGrid(NOW, 900, 4)
    plain = score([job("a")], make_pools(devs), fcs, grid)
    hedged = score([job("a")], make_pools(devs), fcs, grid, risk_aversion=0.5)
    emb = plain.embodied_g[0, 0]
    assert plain.planning_g[0, 0, 0] == plain.total_g[0, 0, 0]
    assert hedged.planning_g[0, 0, 0] - emb == pytest.approx(1.5 * (plain.total_g[0, 0, 0] - emb))


def test_a_zone_without_forecast_is_an_error_naming_it() -> None:
    with pytest.raises(MissingForecastError, match="CA-QC"):
        score([job("a")], make_pools(devices("qc", "CA-QC", "T4", 1)), {}, SlotGrid(NOW, 900, 1))


def test_typical_grams_use_each_pools_mean_forecast_over_the_horizon() -> None:
    """A job's typical grams in a pool are its grams at the pool's horizon-mean intensity: on
    a forecast alternating 100 and 300 g/kWh over 4 h that is the cube's cost at 200 g/kWh."""
    devs = devices("qc", "CA-QC", "T4", 1, pue=1.2) + devices("x", "XX", "T4", 1)
    pools = make_pools(devs)
    grid = SlotGrid(NOW, 3600, 4)
    jobs = [job("a"), job("big", model="llama-70b")]  # the 70B model fits no T4
    estimates = estimate_matrix(jobs, pools)
    swinging = {"CA-QC": forecast("CA-QC", [100.0, 300.0] * 2), "XX": forecast("XX", [0.0])}
    flat = {"CA-QC": forecast("CA-QC", [200.0] * 4), "XX": forecast("XX", [0.0])}
    typical = typical_g(jobs, pools, swinging, grid, estimates)
    p = [pool.zone for pool in pools].index("CA-QC")
    at_mean = score(jobs, pools, flat, grid, estimates=estimates).total_g[0, p, 0]
    assert typical[0, p] == pytest.approx(at_mean)
    assert typical[0, 1 - p] == pytest.approx(score(jobs, pools, flat, grid).embodied_g[0, 1 - p])
    assert np.isinf(typical[1]).all()
    with pytest.raises(MissingForecastError, match="XX"):
        typical_g(jobs, pools, {"CA-QC": flat["CA-QC"]}, grid, estimates)
