"""Where the service's side of a planning round goes: the CPU time inside
``Service._plan`` and its parts around the policy.

``python -m bench.service_parts --jobs 14286 --days 1 --policy carbon-window`` replays the
synthetic workload of :mod:`bench.bench_replay` (its arguments) and sums, with
``time.process_time()`` around each call (no profiler, whose per-call cost overstates
Python-heavy code), the time inside ``Service._plan`` (the round less ingestion and
reconciling), the policy's planner (``PlanState.plan``), the waiting jobs settled and chosen
(``_settle_unstarted``, of which ``Ledger.most_urgent_waiting``), their specs
(``_job_specs``), and ``_act``: the decisions compared and recorded
(``planning.record_decisions``, of which ``Ledger.record_decisions``), the plans handed
back (``_keep_plans``) and the launches (``Dispatch.launch``). "service" is ``_plan`` less
the policy. The same decisions, the same ledger: the functions are only wrapped, for this run.
"""

from __future__ import annotations

import sys

import daemon.service
from bench.parts import Part, time_parts
from daemon.dispatch import Dispatch
from daemon.ledger import Ledger
from daemon.service import Service
from policies.incremental import PlanState

_PARTS: tuple[Part, ...] = (
    (Service, "_plan", "Service._plan"),
    (PlanState, "plan", "policy"),
    (Service, "_settle_unstarted", "_settle_unstarted"),
    (Ledger, "most_urgent_waiting", "most_urgent_waiting"),
    (Service, "_job_specs", "_job_specs"),
    (Service, "_act", "_act"),
    (daemon.service, "record_decisions", "planning.record_decisions"),
    (Ledger, "record_decisions", "Ledger.record_decisions"),
    (Service, "_keep_plans", "_keep_plans"),
    (Dispatch, "launch", "Dispatch.launch"),
)


def main(argv: list[str] | None = None) -> None:
    spent = time_parts(_PARTS, argv)
    service_s = spent["Service._plan"] - spent["policy"]
    print(f"service (Service._plan less the policy) {service_s:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
