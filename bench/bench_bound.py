"""The LP bound split into windows, and the whole span's Lagrangian dual that tightens it.

Self-contained (no shared data): the synthetic jobs of :mod:`bench.bench_replay` (chat-sized
jobs, 4 h deadlines, three regions) over one day, the bound solved three ways with
:func:`policies.bound.lower_bound`: one LP (HiGHS), and ``--window``-long windows by arrival,
whose sum is looser because each window counts the devices again for its own jobs, then
tightened by the whole span's Lagrangian dual (:mod:`policies.lagrangian`). Prints each
bound's grams and CPU time and the ratios to the one LP: the windows' sum alone, and the
bound with the dual (at most 1: every step of the dual is a valid bound).

``python -m bench bound`` (3,000 jobs, 6 h windows); ``--jobs N --window SECONDS``.
Times are CPU time of this process (``time.process_time``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from bench.bench_replay import build_setup
from policies.bound import LowerBound, lower_bound


def _timed(solve: Callable[[], LowerBound]) -> tuple[LowerBound, float]:
    started = time.process_time()
    bound = solve()
    return bound, time.process_time() - started


def main(argv: list[str] | None = None) -> tuple[LowerBound, LowerBound]:
    """Solve and print the bound both ways; returns (the one LP, the windows with the dual)."""
    parser = argparse.ArgumentParser(prog="bench_bound")
    parser.add_argument("--jobs", type=int, default=3_000)
    parser.add_argument("--window", type=float, default=6 * 3600.0, help="seconds")
    args = parser.parse_args(argv or [])
    setup = build_setup(args.jobs, 1.0)
    devices, actuals = setup.cluster.devices(), setup.actuals()

    def solve(window_s: float | None) -> LowerBound:
        return lower_bound(setup.jobs, devices, actuals, lifetime_years=setup.lifetime_years,
                           window_s=window_s, max_cells=10**9)  # fmt: skip

    one, one_s = _timed(lambda: solve(None))
    split, split_s = _timed(lambda: solve(args.window))
    assert split.windows_g is not None and split.dual_g is not None
    print(f"{args.jobs:,} jobs over a day, {one.variables:,} variables")
    print(f"one LP (HiGHS): {one.total_g:,.1f} g in {one_s:.1f} s")
    print(f"{split.windows} windows of {args.window:g} s, then the whole span's dual: windows "
          f"{split.windows_g:,.1f} g ({split.windows_g / one.total_g:.1%} of the one LP), dual "
          f"{split.dual_g:,.1f} g after {split.dual_steps} steps; bound "
          f"{split.total_g:,.1f} g = {split.total_g / one.total_g:.1%} of the one LP, "
          f"in {split_s:.1f} s")  # fmt: skip
    return one, split


if __name__ == "__main__":
    main(sys.argv[1:])
