"""What recording a replay's decisions costs: the CPU time inside the service's side of its
planning rounds.

``python -m bench.recording_cost --jobs 10000 --days 0.7 --policy carbon-window`` replays the
synthetic workload of :mod:`bench.bench_replay` (its arguments) and sums, with
``time.process_time()`` around each call (no profiler, whose per-call cost overstates
Python-heavy code), the time inside ``_act`` (:mod:`daemon.service.plan_round`: recording the
round's decisions, then acting on them), ``planning.record_decisions`` (comparing each decision
with the job's latest, the round's transaction; wrapped where ``plan_round`` calls it) and
``Ledger.record_decisions`` (the rows themselves). The same decisions, the same ledger: the
functions are only wrapped, for this run.
"""

from __future__ import annotations

import sys

from bench.parts import Part, time_parts
from daemon.ledger import Ledger
from daemon.service import plan_round

_PARTS: tuple[Part, ...] = (
    (plan_round, "_act", "_act"),
    (plan_round, "record_decisions", "planning.record_decisions"),
    (Ledger, "record_decisions", "Ledger.record_decisions"),
)


def main(argv: list[str] | None = None) -> None:
    time_parts(_PARTS, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
