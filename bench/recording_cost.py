"""What recording a replay's decisions costs: the CPU time inside the service's side of its
planning rounds.

``python -m bench.recording_cost --jobs 10000 --days 0.7 --policy carbon-window`` replays the
synthetic workload of :mod:`bench.bench_replay` (its arguments) and sums, with
``time.process_time()`` around each call (no profiler, whose per-call cost overstates
Python-heavy code), the time inside ``Service._act`` (recording the round's decisions, then
acting on them), ``planning.record_decisions`` (comparing each decision with the job's latest,
the round's transaction) and ``Ledger.record_decisions`` (the rows themselves). The same
decisions, the same ledger: the functions are only wrapped, for this run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import daemon.service
from bench import bench_replay
from daemon.ledger import Ledger
from daemon.service import Service

_PARTS = (
    (Service, "_act", "Service._act"),
    (daemon.service, "record_decisions", "planning.record_decisions"),
    (Ledger, "record_decisions", "Ledger.record_decisions"),
)


def main(argv: list[str] | None = None) -> None:
    spent = dict.fromkeys((label for _, _, label in _PARTS), 0.0)

    def timed(f: Callable[..., Any], label: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            try:
                return f(*args, **kwargs)
            finally:
                spent[label] += time.process_time() - t0

        return call

    for owner, name, label in _PARTS:  # this run only
        setattr(owner, name, timed(getattr(owner, name), label))
    bench_replay.main(argv)
    print(", ".join(f"{label} {s:.2f} s" for label, s in spent.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
