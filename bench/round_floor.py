"""What a planning round costs the policy when nothing changed: its floor, per part.

``python -m bench.round_floor --jobs 14286 --days 1 --policy carbon-window`` replays the
synthetic workload of :mod:`bench.bench_replay` (its arguments) and, after every
``--every``-th round of the planner's fast path (:class:`policies.incremental.PlanState`)
from the ``--after``-th on, asks the policy again for the same round: the same jobs, devices,
forecasts and time. Its decisions are the first call's (a test holds the fast path to the full
re-plan, `tests/policies/test_incremental.py`) and nothing they depend on moved, so its CPU
time is what a round costs when every held job's plan, forecast and capacity is unchanged and
no job is scored (the round's arrivals were scored by the first call; their run-now claims are
made again, and the jobs the round starts, ~10 a round in the day's replay, are started again:
their decisions are part of it). The second call and its parts are timed
(``time.process_time()``, no profiler); the replay's own rounds are not. Printed: how many of
a repeated round's decisions are the first call's very objects (held decisions repeated as
such, :mod:`policies.round_decisions`), and per part the mean per repeated round and a
least-squares split of it into a constant per round and a cost per job planned (the waiting
jobs vary from round to round; so do the starts with them, so the split is rough).

The replay's decisions and grams are those of ``bench_replay`` (the answer handed to the
service is the first call's); the repeated call leaves its own objects in the kept rows, so
the next round rebuilds a few that it would have kept. Read the parts, not its jobs/s.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bench import bench_replay
from bench.parts import Part
from policies import incremental, round_alternatives, round_decisions
from policies.incremental import PlanState

__all__ = ["main"]

_PARTS: tuple[Part, ...] = (
    (incremental.PlanState, "_score", "scoring"),
    (incremental, "now_means", "slot 0 means"),
    (incremental, "score_cells_now", "slot 0 cells"),
    (incremental, "horizon_means", "horizon means"),
    (incremental, "planning_order", "order"),
    (incremental, "CapacityTimeline", "capacity"),
    (incremental, "_given_cells", "plans handed back"),
    (incremental, "assign", "greedy"),
    (round_alternatives.RunNow, "__init__", "run-now cells"),
    (round_alternatives.RunNow, "alternatives", "run-now alternatives"),
    (round_alternatives, "planned", "planned cells"),
    (round_decisions, "started", "started decisions"),
    (round_decisions, "_others", "started jobs' other pools"),
    (round_decisions, "held", "held decisions"),
)


def main(argv: Sequence[str] | None = None) -> dict[str, tuple[float, float, float]]:
    """Run the replay with the repeated rounds timed; print and return, per part (and
    ``round`` for the whole call), the mean ms per repeated round, the constant ms per round
    and the us per job planned."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--every", type=int, default=2)
    parser.add_argument("--after", type=int, default=100)
    ours, rest = parser.parse_known_args(args)
    timing = [False]
    spent: dict[str, float] = {}
    rounds: list[tuple[int, float, dict[str, float]]] = []

    def timed(f: Callable[..., Any], label: str) -> Callable[..., Any]:
        def call(*a: Any, **k: Any) -> Any:
            if not timing[0]:
                return f(*a, **k)
            t0 = time.process_time()
            try:
                return f(*a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + time.process_time() - t0

        return call

    plan = PlanState.plan
    seen, same = [0], [0]  # rounds planned; decisions repeated as the first call's objects

    def repeated(self: PlanState, policy: str, now: Any, jobs: Any, *a: Any, **k: Any) -> Any:
        answer = plan(self, policy, now, jobs, *a, **k)
        seen[0] += 1
        if seen[0] >= ours.after and (seen[0] - ours.after) % ours.every == 0:
            spent.clear()
            timing[0] = True
            t0 = time.process_time()
            try:
                again = plan(self, policy, now, jobs, *a, **k)
            finally:
                timing[0] = False
            rounds.append((len(jobs), time.process_time() - t0, dict(spent)))
            same[0] += sum(x is y for x, y in zip(answer, again, strict=True))
        return answer

    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in _PARTS]
    try:
        for owner, name, label in _PARTS:
            setattr(owner, name, timed(getattr(owner, name), label))
        PlanState.plan = repeated  # type: ignore[method-assign]
        bench_replay.main(rest)
    finally:
        PlanState.plan = plan  # type: ignore[method-assign]
        for owner, name, f in originals:
            setattr(owner, name, f)
    return _report(rounds, same[0])


def _report(
    rounds: Sequence[tuple[int, float, dict[str, float]]], same: int
) -> dict[str, tuple[float, float, float]]:
    labels = ["round", *(label for _, _, label in _PARTS)]
    jobs = np.array([n for n, _, _ in rounds], dtype=np.float64)
    fit = np.column_stack([np.ones(len(jobs)), jobs])
    out: dict[str, tuple[float, float, float]] = {}
    average = jobs.mean() if len(jobs) else 0.0
    print(
        f"{len(rounds)} repeated rounds, {average:.0f} jobs planned on average,"
        f" {same / max(len(rounds), 1):.0f} decisions a round the first call's objects"
    )
    for label in labels:
        y = np.array([s if label == "round" else parts.get(label, 0.0) for _, s, parts in rounds])
        if len(rounds) >= 2 and np.ptp(jobs) > 0:
            (const, per_job), *_ = np.linalg.lstsq(fit, y, rcond=None)
        else:
            const, per_job = (float(y.mean()) if len(y) else 0.0), 0.0
        mean = float(y.mean()) if len(y) else 0.0
        out[label] = (mean * 1e3, float(const) * 1e3, float(per_job) * 1e6)
        split = f"{const * 1e3:.3f} ms + {per_job * 1e6:.2f} us a job"
        print(f"{label} {mean * 1e3:.3f} ms a round ({split})")
    return out


if __name__ == "__main__":
    main()
