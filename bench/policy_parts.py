"""Where a planning policy's round goes: the CPU time inside the parts of the planner's fast
path (:class:`policies.incremental.PlanState`).

``python -m bench.policy_parts --jobs 10000 --days 0.7 --policy carbon-window`` replays the
synthetic workload of :mod:`bench.bench_replay` (its arguments) and sums, with
``time.process_time()`` around each call (no profiler, whose per-call cost overstates
Python-heavy code: the policy's 3.5 s read 5.6 s under cProfile), the time inside
``PlanState.plan`` and its parts: the kept rows scored (``_score``; within it the new jobs'
estimates and cells and slot 0 of every job), the jobs' regrets, the planning order, the capacity
timeline, the held jobs' plans handed back read as cells, the greedy, the run-now
counterfactuals' cells and the alternatives built from them (for the started jobs and the held
decisions built again: within the held decisions' time too), the planned cells, the started
and the held jobs' decisions. The same decisions: the functions are only wrapped, for this
run.
"""

from __future__ import annotations

import sys

from bench.parts import Part, time_parts
from policies import incremental, round_alternatives, round_decisions

_PARTS: tuple[Part, ...] = (
    (incremental.PlanState, "plan", "plan"),
    (incremental.PlanState, "_score", "scoring"),
    (incremental, "estimate_matrix", "new jobs' estimates"),
    (incremental, "score", "new jobs' cells"),
    (incremental, "score_cells_now", "slot 0"),
    (incremental, "regret_rows", "regrets"),
    (incremental, "planning_order", "order"),
    (incremental, "CapacityTimeline", "capacity"),
    (incremental, "_given_cells", "plans handed back"),
    (incremental, "assign", "greedy"),
    (round_alternatives.RunNow, "__init__", "run-now cells"),
    (round_alternatives.RunNow, "alternatives", "run-now alternatives"),
    (round_alternatives, "planned", "planned cells"),
    (round_decisions, "started", "started decisions"),
    (round_decisions, "held", "held decisions"),
)


def main(argv: list[str] | None = None) -> None:
    time_parts(_PARTS, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
