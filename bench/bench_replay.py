"""Replay throughput: a week of jobs through the daemon's Service (replay driver), in jobs/s.

Synthetic and self-contained (no shared data needed): Poisson arrivals of chat-sized jobs
(128 requests of ~1,000 + 200 tokens, llama-3b on vLLM) over a week, three regions with the
paper's zones and GPUs sized for the load, diurnal intensity curves with noise, deadlines 4 h
(``--deadline-h``) after arrival, the daemon ticking every 60 s. Prints jobs per second per policy.

``python -m bench replay`` runs 100,000 jobs; ``python -m bench.bench_replay --jobs 10000``
is a quick run; ``--jobs 14286 --days 1`` replays one day at the 100,000-a-week rate on the
same 32 GPUs, and ``--plan-window N`` sets the daemon's ``[policy] plan_window``;
``--policy`` takes names with parameters as ``carbond replay`` does
(``carbon-window:replan_margin=0``). Each policy's
line ends with the most jobs waiting at once (arrived, not started).

Times are CPU time of this process (``time.process_time``): the dev machine is shared, so
wall-clock time would measure the neighbours.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from daemon.logs import configure_logging
from daemon.replay.cluster import Cluster, Region
from daemon.replay.driver import JobOutcome, ReplaySetup, replay_policy
from daemon.replay.errors import ReplayError
from daemon.replay.inputs import parse_policies
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


def _cluster(jobs_per_week: float) -> Cluster:
    scale = max(1, round(jobs_per_week / 100_000 * 8))
    t4, ada = DEFAULT_GPU_CATALOG.get("T4"), DEFAULT_GPU_CATALOG.get("RTX6000-Ada")
    return Cluster((
        Region("quebec", "CA-QC", 1.0, ((t4, 2 * scale),)),
        Region("california", "US-CAL-CISO", 1.0, ((ada, scale),)),
        Region("pace", "US-NW-PACE", 1.0, ((ada, scale),)),
    ))  # fmt: skip


def _jobs(n: int, span_s: float, deadline_s: float) -> list[JobSpec]:
    rng = np.random.default_rng(1)
    model = DEFAULT_MODEL_CATALOG.get("llama-3b")
    arrivals = np.sort(rng.uniform(0, span_s, n))
    tokens = rng.integers(600, 1400, n)
    names = ("quebec", "california", "pace")
    jobs = []
    for i, (offset, n_in) in enumerate(zip(arrivals, tokens, strict=True)):
        at = START + timedelta(seconds=float(offset))
        home = names[i % 3]
        order = (home, *(r for r in names if r != home))
        jobs.append(JobSpec(f"j{i}", model, Workload(8, int(n_in), 200, 128), at,
                            at + timedelta(seconds=deadline_s), "vllm", order))  # fmt: skip
    return jobs


def build_setup(
    jobs: int, days: float, tick_s: int = 60, plan_window: int = 1_000,
    deadline_s: float = 4 * 3600.0,
) -> ReplaySetup:  # fmt: skip
    """The benchmark's replay: ``jobs`` Poisson arrivals over ``days``, each due ``deadline_s``
    after it arrives, on the cluster sized for that rate (``--jobs 100000 --days 7``: the
    week)."""
    signals = _signals()
    span_s = days * 86_400
    setup = ReplaySetup(tuple(_jobs(jobs, span_s, deadline_s)), _cluster(jobs * WEEK_S / span_s),
                        signals, START, START + timedelta(seconds=span_s), tick_s,
                        plan_window=plan_window)  # fmt: skip
    signals.covers(setup.start, setup.end)
    return setup


def main(argv: list[str] | None = None) -> list[tuple[str, float, int]]:
    """Replay each policy; print and return its (label, CPU seconds, jobs)."""
    parser = argparse.ArgumentParser(prog="bench_replay")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--policy", default="run-now,carbon-window")
    parser.add_argument("--tick", type=int, default=60)
    # the daemon's [policy] plan_window: waiting jobs planned per round
    parser.add_argument("--plan-window", type=int, default=1_000)
    # a shorter span at the same arrival rate and cluster (--jobs counts the span's jobs)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--deadline-h", type=float, default=4.0, help="hours after arrival")
    args = parser.parse_args(argv if argv is not None else [])
    try:
        specs = parse_policies(args.policy)
    except ReplayError as exc:
        parser.error(str(exc))
    configure_logging(level="WARNING")  # per-job events would dominate the measurement
    setup = build_setup(args.jobs, args.days, args.tick, args.plan_window, args.deadline_h * 3600)
    gpus = len(setup.cluster.devices())
    span = "a week" if args.days == 7 else f"{args.days:g} days"
    print(f"{args.jobs:,} jobs over {span}, {gpus} GPUs in 3 regions, tick {args.tick} s, "
          f"plan window {args.plan_window:,}")  # fmt: skip
    measured = []
    for spec in specs:
        name = spec.label
        t0 = time.process_time()
        run = replay_policy(setup, spec.name, spec.params)
        elapsed = time.process_time() - t0
        misses = sum(o.missed_deadline for o in run.outcomes)
        grams = sum(o.total_g for o in run.outcomes)
        print(f"{name}: {elapsed:.1f} s, {len(run.outcomes) / elapsed:,.0f} jobs/s "
              f"({len(run.outcomes):,} jobs, {misses} deadline misses, {grams:,.0f} g, "
              f"peak {_peak_waiting(run.outcomes):,} waiting)")  # fmt: skip
        measured.append((name, elapsed, len(run.outcomes)))
    return measured


def _peak_waiting(outcomes: Sequence[JobOutcome]) -> int:
    """The most jobs waiting (arrived, not started) at any one time."""
    times = [(o.arrival, 1) for o in outcomes] + [(o.started_at, -1) for o in outcomes]
    times.sort(key=lambda t: (t[0], t[1]))  # a start at the same instant first
    return int(np.max(np.cumsum([step for _, step in times]), initial=0))


if __name__ == "__main__":
    main(sys.argv[1:])
