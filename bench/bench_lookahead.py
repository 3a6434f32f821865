"""What the look-ahead costs over the greedy: one planning tick over a long queue, and a day of
replay, each with ``carbon-window`` and ``carbon-lookahead`` (CPU seconds and their ratio).

Self-contained (no shared data):

- **a tick**: ``--queue`` jobs (600) waiting at once on the paper's cluster (Quebec 4 x T4,
  California and PACE 2 x RTX 6000 Ada; 96 slots of 15 minutes), deadlines 6-20 h away, each
  policy's first ``plan`` call (cold: every job scored). The look-ahead's LP then has ~90,000
  cells, which it solves through its dual (``policies/lookahead.py``): as it stands HiGHS took
  111 s on it (bench/RESULTS.md);
- **a day**: the jobs and cluster of :mod:`bench.bench_replay` (``--jobs`` 1,000 over a day on
  4 GPUs in three regions) with deadlines 12 h after arrival, so that most of the queue may
  wait and the look-ahead solves its LP in most rounds; also each policy's grams.

``python -m bench lookahead``; ``--queue N``, ``--jobs N --days D --deadline-h H``.
Times are CPU time of this process (``time.process_time``).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from bench import bench_replay
from daemon.intensity.providers import ZoneSeries
from policies import Device, JobSpec, get_policy
from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG, Workload

NOW = datetime(2023, 6, 5, tzinfo=UTC)
POLICIES = ("carbon-window", "carbon-lookahead")


def _queue(n: int) -> tuple[list[JobSpec], list[Device], dict[str, ZoneSeries]]:
    """``n`` jobs waiting now on the paper's cluster, with 30 h of hourly forecasts."""
    rng = np.random.default_rng(0)
    pools = (  # region, zone, GPU, devices, and the range of its hourly intensity (g/kWh)
        ("quebec", "CA-QC", "T4", 4, 20, 60),
        ("california", "US-CAL-CISO", "RTX6000-Ada", 2, 80, 500),
        ("pace", "US-NW-PACE", "RTX6000-Ada", 2, 400, 800),
    )
    devices, forecasts = [], {}
    for region, zone, gpu, count, low, high in pools:
        spec = DEFAULT_GPU_CATALOG.get(gpu)
        devices += [Device(f"{region}-{i}", region, zone, spec) for i in range(count)]
        forecasts[zone] = ZoneSeries(zone, NOW, 3600, rng.uniform(low, high, 30))
    model, regions = DEFAULT_MODEL_CATALOG.get("llama-1b"), tuple(p[0] for p in pools)
    jobs = [
        JobSpec(f"j{i}", model, Workload(8, 1000, 200, int(rng.integers(256, 4096))), NOW,
                NOW + timedelta(hours=float(rng.uniform(6, 20))), regions=regions)
        for i in range(n)
    ]  # fmt: skip
    return jobs, devices, forecasts


def _tick(n: int) -> tuple[float, float]:
    """Each policy's first tick over ``n`` waiting jobs: (greedy, look-ahead) CPU seconds."""
    jobs, devices, forecasts = _queue(n)
    get_policy(POLICIES[0]).plan(NOW, jobs[:10], devices, forecasts)  # compile the greedy
    seconds = []
    for name in POLICIES:
        policy = get_policy(name)
        started = time.process_time()
        decisions = policy.plan(NOW, jobs, devices, forecasts)
        seconds.append(time.process_time() - started)
        starts = sum(d.action == "start" for d in decisions)
        print(f"{name} tick over {n:,} waiting jobs: {seconds[-1]:.2f} s ({starts} started)")
    return seconds[0], seconds[1]


def main(argv: list[str] | None = None) -> tuple[float, float]:
    """Print and return the look-ahead's CPU over the greedy's: (a tick, a day of replay)."""
    parser = argparse.ArgumentParser(prog="bench_lookahead")
    parser.add_argument("--queue", type=int, default=600)
    parser.add_argument("--jobs", type=int, default=1_000)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--deadline-h", type=float, default=12.0)
    args = parser.parse_args(argv or [])
    greedy_tick, lookahead_tick = _tick(args.queue)
    tick = lookahead_tick / greedy_tick
    print(f"carbon-lookahead / carbon-window, a tick: {tick:.0f}x")
    measured = bench_replay.main([
        "--jobs", str(args.jobs), "--days", str(args.days), "--deadline-h", str(args.deadline_h),
        "--policy", ",".join(POLICIES),
    ])  # fmt: skip
    (_, greedy_s, _), (_, lookahead_s, _) = measured
    day = lookahead_s / greedy_s
    print(f"carbon-lookahead / carbon-window, a day of replay: {day:.1f}x")
    return tick, day


if __name__ == "__main__":
    main(sys.argv[1:])
