"""The site model's dispatch loop against vessim's, and the planner's effective intensity.

A week of a PV day curve and a random GPU load at 60 s steps (10,080 steps) with a battery:
carbond's :func:`policies.footprint.site.dispatch` against stepping vessim's ``SimpleBattery``
with its ``DefaultDispatchPolicy`` (the test extra; the vessim arm is skipped without it), both
on the case they model alike; then one 48-step ``effective_intensity`` (what the planner
computes per site and round).
"""

from __future__ import annotations

import time

import numpy as np

from policies.footprint.site import Battery, SiteFactors, dispatch, effective_intensity

STEPS = 10_080
STEP_S = 60.0


def main() -> None:
    rng = np.random.default_rng(0)
    hours = (np.arange(STEPS) + 0.5) * STEP_S / 3600 % 24
    pv = np.clip(np.sin((hours - 6) / 12 * np.pi), 0, None) * 6000
    gpu = rng.uniform(500, 3000, STEPS)
    battery = Battery(1.0, 500, 500, round_trip_efficiency=1.0, min_soc=0.2, initial_soc=0.8)
    repeats = 5
    start = time.perf_counter()
    for _ in range(repeats):
        dispatch(pv, gpu, 0.0, STEP_S, battery)
    ours_s = (time.perf_counter() - start) / repeats
    print(f"week at 60 s ({STEPS} steps), carbond dispatch : {ours_s * 1e3:8.1f} ms")
    try:
        import vessim
    except ImportError:
        print("vessim not installed (test extra): no comparison")
    else:
        start = time.perf_counter()
        cell = vessim.SimpleBattery("b", 1000, initial_soc=0.8, min_soc=0.2, c_rate=0.5)
        grid = vessim.GridConnection("grid")
        policy = vessim.DefaultDispatchPolicy()
        for k in range(STEPS):
            policy.apply(pv[k] - gpu[k], STEP_S, [cell, grid])
            cell.step(STEP_S)
        theirs_s = time.perf_counter() - start
        print(f"week at 60 s ({STEPS} steps), vessim 0.16    : {theirs_s * 1e3:8.1f} ms")
        print(f"ratio                                     : {theirs_s / ours_s:8.1f}x")
    grid_g = rng.uniform(100, 400, 48)
    big = Battery(10.0, 5000, 5000)
    start = time.perf_counter()
    for _ in range(200):
        effective_intensity(grid_g, pv[: 48 * 60 : 60], 0.0, 1000.0, 4000.0, 3600.0,
                            SiteFactors(), big, 0.5)  # fmt: skip
    per_call = (time.perf_counter() - start) / 200
    print(f"effective_intensity, 48 hourly steps       : {per_call * 1e6:8.0f} us per call")


if __name__ == "__main__":
    main()
