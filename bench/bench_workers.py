"""Several policies replayed at once (``carbond replay``/``tune --workers``): wall time with one
worker, then with every CPU, on the synthetic day of :mod:`bench.bench_replay`.

``python -m bench workers`` replays one day at the 100,000-jobs-a-week rate (14,286 jobs)
under four policies; ``--jobs``, ``--days``, ``--policy`` and ``--workers`` change it. Prints
each wall time, the speed-up and whether the results are identical (they must be). Wall time,
not CPU time, is the point here: on a shared machine the neighbours slow both runs.
"""

from __future__ import annotations

import argparse
import time

from bench.bench_replay import build_setup
from daemon.logs import configure_logging
from daemon.replay.inputs import parse_policies
from daemon.replay.parallel import Replays, available_workers


def main(argv: list[str] | None = None) -> float | None:
    """Print and return the speed-up of ``--workers`` over one worker (None: one CPU)."""
    parser = argparse.ArgumentParser(prog="bench_workers")
    parser.add_argument("--jobs", type=int, default=14_286)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--policy", default="run-now,carbon-window,spatial,wait-awhile")
    parser.add_argument("--workers", type=int, default=available_workers())
    args = parser.parse_args(argv if argv is not None else [])
    configure_logging(level="WARNING")
    specs = parse_policies(args.policy)
    setup = build_setup(args.jobs, args.days)
    print(f"{len(specs)} policies x {args.jobs:,} jobs over {args.days:g} days, "
          f"{available_workers()} CPUs")  # fmt: skip
    if args.workers < 2:
        print("one worker only: nothing to compare")
        return None
    walls, results = [], []
    for workers in (1, args.workers):
        started = time.perf_counter()
        with Replays(setup, specs, workers) as replays:
            forked = replays.forked
            results.append(replays.results())
        walls.append(time.perf_counter() - started)
        note = "" if forked or workers == 1 else " (not forked: ran in this process)"
        print(f"workers {workers}: {walls[-1]:.1f} s wall{note}")
    speedup = walls[0] / walls[1]
    same = "identical" if results[0] == results[1] else "DIFFERENT"
    print(f"{args.workers} workers: {speedup:.2f}x one worker's speed, results {same}")
    return speedup
