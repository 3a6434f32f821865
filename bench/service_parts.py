"""Where the service's side of a planning round goes: the CPU time inside
``plan_round`` (:mod:`daemon.service.plan_round`, the service's ``plan`` step) and its parts
around the policy.

``python -m bench.service_parts --jobs 14286 --days 1 --policy carbon-window`` replays the
synthetic workload of :mod:`bench.bench_replay` (its arguments) and sums, with
``time.process_time()`` around each call (no profiler, whose per-call cost overstates
Python-heavy code), the time inside ``plan_round`` (the round less ingestion and
reconciling), the policy's planner (``PlanState.plan``), the waiting jobs settled and chosen
(``unstarted.settle``, of which ``Ledger.most_urgent_waiting``), their specs
(``_job_specs``), and ``_act``: the decisions compared and recorded
(``planning.record_decisions``, of which ``Ledger.record_decisions``), the plans handed
back (``_keep_plans``) and the launches (``Dispatch.launch``). "service" is ``plan_round`` less
the policy. The same decisions, the same ledger: the functions are only wrapped, for this run.
"""

from __future__ import annotations

import sys

from bench.parts import Part, time_parts
from daemon.ledger import Ledger
from daemon.service import core, plan_round, unstarted
from daemon.service.dispatch import Dispatch
from policies.incremental import PlanState

_PARTS: tuple[Part, ...] = (
    (core, "plan_round", "plan_round"),  # as the service calls it
    (PlanState, "plan", "policy"),
    (unstarted, "settle", "unstarted.settle"),
    (Ledger, "most_urgent_waiting", "most_urgent_waiting"),
    (plan_round, "_job_specs", "_job_specs"),
    (plan_round, "_act", "_act"),
    (plan_round, "record_decisions", "planning.record_decisions"),
    (Ledger, "record_decisions", "Ledger.record_decisions"),
    (plan_round, "_keep_plans", "_keep_plans"),
    (Dispatch, "launch", "Dispatch.launch"),
)


def main(argv: list[str] | None = None) -> None:
    spent = time_parts(_PARTS, argv)
    service_s = spent["plan_round"] - spent["policy"]
    print(f"service (plan_round less the policy) {service_s:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
