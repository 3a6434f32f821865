"""Small planning instances and their optimum by brute force, for the tests of the LP bound
and the MIP: a two-zone cluster, random jobs, every start of every job on a grid, and the best
schedule that fits."""

from __future__ import annotations

import itertools
from datetime import timedelta

import numpy as np

from policies.estimates import estimate_matrix
from policies.footprint.accounting import DEFAULT_LIFETIME_YEARS, embodied_g, operational_g
from policies.means import mean_intensities
from policies.scoring import make_pools
from policies.types import Device, JobSpec
from tests.policies.conftest import NOW, FakeForecast, devices, forecast, job

GRID_S = 300.0  # the brute force's start grid, s (5 minutes)


def small_cluster(seed: int, size: int = 1) -> tuple[list[Device], dict[str, FakeForecast]]:
    """``size`` T4s in CA-QC and ``size`` RTX 6000 Adas in US-CAL-CISO, each zone with 12
    random hourly intensities (g/kWh) drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    devs = devices("qc", "CA-QC", "T4", size) + devices("ca", "US-CAL-CISO", "RTX6000-Ada", size)
    return devs, {
        "CA-QC": forecast("CA-QC", list(rng.uniform(20, 200, 12))),
        "US-CAL-CISO": forecast("US-CAL-CISO", list(rng.uniform(50, 500, 12))),
    }


def small_jobs(
    seed: int, n: int, requests: tuple[int, int] = (1024, 3072),
    hours_range: tuple[float, float] = (1.0, 2.5),
) -> list[JobSpec]:  # fmt: skip
    """``n`` jobs for either region, each arriving on the grid in the first 30 minutes with a
    request count in ``requests`` and a deadline ``hours_range`` hours after it arrives (all
    drawn from ``seed``)."""
    rng = np.random.default_rng(seed + 100)
    out = []
    for i in range(n):
        arrival = NOW + timedelta(seconds=GRID_S * int(rng.integers(0, 6)))
        hours = float(rng.uniform(*hours_range))
        spec = job(f"j{i}", regions=("qc", "ca"), requests=int(rng.integers(*requests)),
                   submitted=arrival)  # fmt: skip
        out.append(
            JobSpec(
                spec.job_id,
                spec.model,
                spec.workload,
                arrival,
                arrival + timedelta(hours=hours),
                regions=spec.regions,
            )
        )
    return out


def start_options(
    jobs: list[JobSpec], devs: list[Device], fcs: dict[str, FakeForecast], step_s: float
) -> list[list[tuple[int, float, float, float]]]:
    """Every (pool, start, end, grams) of every job on a grid of ``step_s`` seconds."""
    pools = make_pools(devs)
    duration, energy, ok = estimate_matrix(jobs, pools)
    out = []
    for j, spec in enumerate(jobs):
        options = []
        assert spec.deadline is not None
        for p, pool in enumerate(pools):
            if not ok[j, p]:
                continue
            d, e = float(duration[j, p]), float(energy[j, p])
            series = fcs[pool.zone]
            t = (spec.submitted_at - NOW).total_seconds()
            while t + d <= (spec.deadline - NOW).total_seconds():
                mean = float(mean_intensities(series.values_g_per_kwh, 3600, 0.0,
                                              np.array([t]), np.array([d]))[0])  # fmt: skip
                grams = operational_g(e, mean, pool.pue) + embodied_g(
                    d, pool.gpu.embodied_g, DEFAULT_LIFETIME_YEARS
                )
                options.append((p, t, t + d, float(grams)))
                t += step_s
        out.append(options)
    return out


def fits(chosen: list[tuple[int, float, float, float]], sizes: list[int]) -> bool:
    """Whether the runs keep within each pool's devices at every instant."""
    for p, size in enumerate(sizes):
        runs = sorted((s, e) for q, s, e, _ in chosen if q == p)
        for instant, _ in runs:
            if sum(s <= instant < e for s, e in runs) > size:
                return False
    return True


def brute_force(
    jobs: list[JobSpec], devs: list[Device], fcs: dict[str, FakeForecast], step_s: float
) -> float:
    """The fewest grams of any schedule of ``jobs`` that starts each on the ``step_s`` grid and
    keeps within each pool's devices, found by trying them all (``inf`` when none fits)."""
    sizes = [pool.size for pool in make_pools(devs)]
    best = np.inf
    for combo in itertools.product(*start_options(jobs, devs, fcs, step_s)):
        grams = sum(c[3] for c in combo)
        if grams < best and fits(list(combo), sizes):
            best = grams
    return float(best)
