"""What the look-ahead costs over the greedy: a synthetic day replayed with ``carbon-window``
and ``carbon-lookahead``, CPU seconds and jobs/s of each and their ratio.

Self-contained (no shared data): the jobs and cluster of :mod:`bench.bench_replay` (1,000 jobs
over a day on 4 GPUs in three regions) with deadlines 12 h after arrival, so that most of the
queue may wait and the look-ahead solves its LP in most rounds (``policies/lookahead.py``).
Also prints each policy's grams: the look-ahead is there to need fewer.

``python -m bench lookahead``; ``--jobs N --days D --deadline-h H``.
Times are CPU time of this process (``time.process_time``).
"""

from __future__ import annotations

import argparse
import sys

from bench import bench_replay


def main(argv: list[str] | None = None) -> float:
    """Replay both policies; print and return the look-ahead's CPU time over the greedy's."""
    parser = argparse.ArgumentParser(prog="bench_lookahead")
    parser.add_argument("--jobs", type=int, default=1_000)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--deadline-h", type=float, default=12.0)
    args = parser.parse_args(argv or [])
    measured = bench_replay.main([
        "--jobs", str(args.jobs), "--days", str(args.days), "--deadline-h", str(args.deadline_h),
        "--policy", "carbon-window,carbon-lookahead",
    ])  # fmt: skip
    (_, greedy_s, _), (_, lookahead_s, _) = measured
    ratio = lookahead_s / greedy_s
    print(f"carbon-lookahead / carbon-window CPU: {ratio:.1f}x")
    return ratio


if __name__ == "__main__":
    main(sys.argv[1:])
