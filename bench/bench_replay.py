"""Replay throughput: a week of jobs through the daemon's Service (replay driver), in jobs/s.

Synthetic and self-contained (no shared data needed): Poisson arrivals of chat-sized jobs
(128 requests of ~1,000 + 200 tokens, llama-3b on vLLM) over a week, three regions with the
paper's zones and GPUs sized for the load, diurnal intensity curves with noise, deadlines 4 h
after arrival, the daemon ticking every 60 s. Prints jobs per second per policy.

``python -m bench replay`` runs 100,000 jobs; ``python -m bench.bench_replay --jobs 10000``
is a quick run.

Times are CPU time of this process (``time.process_time``): the dev machine is shared, so
wall-clock time would measure the neighbours.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from daemon.logs import configure_logging
from daemon.replay.cluster import Cluster, Region
from daemon.replay.driver import ReplaySetup, replay_policy
from daemon.replay.signals import ReplaySignals
from forecasts import IntensitySeries
from policies import JobSpec
from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG, Workload

START = datetime(2023, 6, 5, tzinfo=UTC)
WEEK_S = 7 * 86400
ZONES = {"CA-QC": (31.0, 0.1), "US-CAL-CISO": (262.0, 0.4), "US-NW-PACE": (647.0, 0.1)}


def _signals() -> ReplaySignals:
    rng = np.random.default_rng(0)
    begin = START - timedelta(days=35)
    hours = np.arange(45 * 24)
    series = {}
    for k, (zone, (mean, amplitude)) in enumerate(ZONES.items()):
        values = mean * (1 + amplitude * np.cos(2 * np.pi * (hours % 24 - 6 * k) / 24))
        values = np.maximum(values + rng.normal(0, mean * 0.05, len(hours)), 1.0)
        series[zone] = IntensitySeries(zone, begin, 3600, values)
    return ReplaySignals([series], list(ZONES), "seasonal-24h")


def _cluster(jobs: int) -> Cluster:
    scale = max(1, round(jobs / 100_000 * 8))
    t4, ada = DEFAULT_GPU_CATALOG.get("T4"), DEFAULT_GPU_CATALOG.get("RTX6000-Ada")
    return Cluster((
        Region("quebec", "CA-QC", 1.0, ((t4, 2 * scale),)),
        Region("california", "US-CAL-CISO", 1.0, ((ada, scale),)),
        Region("pace", "US-NW-PACE", 1.0, ((ada, scale),)),
    ))  # fmt: skip


def _jobs(n: int) -> list[JobSpec]:
    rng = np.random.default_rng(1)
    model = DEFAULT_MODEL_CATALOG.get("llama-3b")
    arrivals = np.sort(rng.uniform(0, WEEK_S, n))
    tokens = rng.integers(600, 1400, n)
    names = ("quebec", "california", "pace")
    jobs = []
    for i, (offset, n_in) in enumerate(zip(arrivals, tokens, strict=True)):
        at = START + timedelta(seconds=float(offset))
        home = names[i % 3]
        order = (home, *(r for r in names if r != home))
        jobs.append(JobSpec(f"j{i}", model, Workload(8, int(n_in), 200, 128), at,
                            at + timedelta(hours=4), "vllm", order))  # fmt: skip
    return jobs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_replay")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--policy", default="run-now,carbon-window")
    parser.add_argument("--tick", type=int, default=60)
    # the daemon's [policy] plan_window: waiting jobs planned per round
    parser.add_argument("--plan-window", type=int, default=1_000)
    args = parser.parse_args(argv if argv is not None else [])
    configure_logging(level="WARNING")  # per-job events would dominate the measurement
    signals = _signals()
    setup = ReplaySetup(tuple(_jobs(args.jobs)), _cluster(args.jobs), signals, START,
                        START + timedelta(seconds=WEEK_S), args.tick,
                        plan_window=args.plan_window)  # fmt: skip
    signals.covers(setup.start, setup.end)
    gpus = len(setup.cluster.devices())
    print(f"{args.jobs:,} jobs over a week, {gpus} GPUs in 3 regions, tick {args.tick} s")
    for name in args.policy.split(","):
        t0 = time.process_time()
        run = replay_policy(setup, name)
        elapsed = time.process_time() - t0
        misses = sum(o.missed_deadline for o in run.outcomes)
        grams = sum(o.total_g for o in run.outcomes)
        print(f"{name}: {elapsed:.1f} s, {len(run.outcomes) / elapsed:,.0f} jobs/s "
              f"({len(run.outcomes):,} jobs, {misses} deadline misses, "
              f"{grams:,.0f} g)")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
