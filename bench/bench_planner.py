"""Planning-tick speed: 10,000 queued jobs x 64 GPUs x 96 start slots.

Every GPU is its own pool (64 regions in 8 zones, 4 GPU types), so the cost cube has
10,000 x 64 x 96 = 61.4 M cells. Prints, for the vectorised scorer alone and for a whole
``carbon-window`` tick (scoring + capacity-aware greedy assignment + decisions):

- cost cells per second;
- the ratio of that time to one NumPy pass over an array of the same size (``a * b + c``
  on float64, chunked like the scorer): how close the planner is to the machine's limit.

``python -m bench planner`` (or ``make bench``); ``--jobs N`` for a quicker run.

Times are CPU time of this process (``time.process_time``): the dev machine is shared, so
wall-clock time would measure the neighbours.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from policies import Device, JobSpec, get_policy
from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG, Workload
from policies.scoring import SlotGrid, make_pools, score

NOW = datetime(2023, 6, 5, tzinfo=UTC)
GPUS = ("T4", "RTX6000-Ada", "L4", "A100-40GB")
ZONES = ("CA-QC", "US-CAL-CISO", "US-NW-PACE", "DE", "FR", "GB", "ES", "NO")


class _Forecast:
    def __init__(self, zone: str, values: np.ndarray) -> None:  # type: ignore[type-arg]
        self.zone, self.start, self.step_s, self.values_g_per_kwh = zone, NOW, 3600, values


def _cluster() -> tuple[list[Device], dict[str, _Forecast]]:
    devices = [
        Device(f"r{i}/0", f"r{i}", ZONES[i % len(ZONES)], DEFAULT_GPU_CATALOG.get(GPUS[i % 4]))
        for i in range(64)
    ]
    rng = np.random.default_rng(0)
    hours = np.arange(30)
    forecasts = {
        z: _Forecast(z, 200 + 150 * np.sin(hours / 24 * 2 * np.pi + k) + rng.normal(0, 10, 30))
        for k, z in enumerate(ZONES)
    }
    return devices, forecasts


def _jobs(n: int) -> list[JobSpec]:
    rng = np.random.default_rng(1)
    model = DEFAULT_MODEL_CATALOG.get("llama-3b")
    return [
        JobSpec(
            f"j{i}",
            model,
            Workload(8, int(rng.integers(100, 2000)), int(rng.integers(10, 400)), 1024),
            NOW,
            NOW + timedelta(hours=float(rng.uniform(1, 24))),
            "vllm",
        )
        for i in range(n)
    ]


def _numpy_pass_s(cells: int, chunk: int) -> float:
    a = np.random.default_rng(2).random(chunk)
    b, c, out = a * 0.5, a + 1.0, np.empty_like(a)
    t0 = time.process_time()
    for _ in range(max(1, cells // chunk)):
        np.multiply(a, b, out=out)
        np.add(out, c, out=out)
    return time.process_time() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_planner")
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args(argv if argv is not None else [])
    devices, forecasts = _cluster()
    jobs = _jobs(args.jobs)
    pools = make_pools(devices)
    grid = SlotGrid(NOW, 900, 96)
    cells = len(jobs) * len(pools) * grid.count
    chunk = 1024
    cache: dict[tuple[object, ...], object] = {}
    for first in range(0, len(jobs), chunk):  # warm the estimate cache (once per job x GPU)
        score(jobs[first : first + chunk], pools, forecasts, grid, cache=cache)  # type: ignore[arg-type]
    t0 = time.process_time()
    for first in range(0, len(jobs), chunk):
        score(jobs[first : first + chunk], pools, forecasts, grid, cache=cache,  # type: ignore[arg-type]
              risk_aversion=0.5)  # fmt: skip
    scorer_s = time.process_time() - t0
    policy = get_policy("carbon-window")
    policy.plan(NOW, jobs[:10], devices, forecasts)  # type: ignore[arg-type]
    policy._cache.update(cache)  # type: ignore[attr-defined]  # estimates as in steady state
    t0 = time.process_time()
    decisions = policy.plan(NOW, jobs, devices, forecasts)  # type: ignore[arg-type]
    tick_s = time.process_time() - t0
    numpy_s = _numpy_pass_s(cells, chunk * len(pools) * grid.count)
    started = sum(d.action == "start" for d in decisions)
    print(f"cells: {len(jobs)} jobs x {len(pools)} GPUs x {grid.count} slots = {cells:,}")
    print(f"numpy pass (a*b+c) over {cells:,} float64: {numpy_s:.3f} s "
          f"({cells / numpy_s / 1e6:,.0f} M cells/s)")  # fmt: skip
    print(f"scorer: {scorer_s:.3f} s = {cells / scorer_s / 1e6:,.1f} M cells/s, "
          f"{scorer_s / numpy_s:.1f}x one numpy pass")  # fmt: skip
    print(f"carbon-window tick: {tick_s:.3f} s = {cells / tick_s / 1e6:,.1f} M cells/s, "
          f"{tick_s / numpy_s:.1f}x one numpy pass ({started} started, "
          f"{len(decisions) - started} held)")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
