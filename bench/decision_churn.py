"""Why a replay stores so many decisions: each stored decision against the job's previous one.

``python -m bench.decision_churn --jobs 10000 --days 0.7`` replays the synthetic workload of
:mod:`bench.bench_replay` (its arguments) and counts, per policy, the decisions the daemon
stored and what changed from the job's previous stored decision (``daemon.planning``'s key:
action, policy, reason, devices, planned start): only the planned start (by how many minutes),
the action, only the reason, or the devices. Counted where the service records them (its
``record_decisions`` wrapped for the run): the same decisions, the same ledger. It also
counts the alternatives those decisions write (run-now counterfactuals and others) and how many
distinct sets of figures they carry: the ledger writes each set's text once
(:mod:`daemon.ledger.decisions`).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import daemon.service.plan_round
from bench import bench_replay
from daemon.ledger import JobRecord, Ledger
from daemon.planning import DecisionKey, decision_key, record_decisions
from policies import Decision

_NAMES = ("action", "policy", "reason", "devices", "start")


def main(argv: list[str] | None = None) -> None:
    previous: dict[str, DecisionKey] = {}
    counts: Counter[str] = Counter()
    figures: set[tuple[float, ...]] = set()
    written = 0

    def counting(
        ledger: Ledger, decided: Sequence[tuple[JobRecord, Decision]], now: datetime,
        seen: Any = None,
    ) -> list[bool]:  # fmt: skip
        nonlocal written
        stored = record_decisions(ledger, decided, now, seen)
        for (job, decision), new in zip(decided, stored, strict=True):
            if new:
                run_now = decision.run_now
                alts = [a for a in decision.alternatives if a is not run_now]
                for alt in [run_now, *alts] if run_now is not None else alts:
                    written += 1
                    figures.add((alt.duration_s, alt.energy_j, alt.intensity_g_per_kwh,
                                 alt.operational_g, alt.embodied_g))  # fmt: skip
                counts["stored"] += 1
                key = decision_key(decision, now)
                counts[_change(previous.get(job.job_id), key)] += 1
                previous[job.job_id] = key
        return stored

    plan_round = daemon.service.plan_round
    original = plan_round.record_decisions  # type: ignore[attr-defined]  # raises if gone
    plan_round.record_decisions = counting  # type: ignore[attr-defined]  # this run only
    try:
        bench_replay.main(argv)
    finally:
        plan_round.record_decisions = original  # type: ignore[attr-defined]
    total = counts.pop("stored")
    print(f"{total:,} decisions stored")
    for what, n in counts.most_common():
        print(f"  {n:>9,}  {n / total:6.1%}  {what}")
    print(f"{written:,} alternatives written with them, {len(figures):,} distinct sets of figures")


def _change(before: DecisionKey | None, after: DecisionKey) -> str:
    """What changed from ``before`` to ``after``, in words."""
    if before is None:
        return "first decision about the job"
    changed = [name for name, a, b in zip(_NAMES, before, after, strict=True) if a != b]
    if changed == ["reason", "start"] and before[4] is not None and after[4] is not None:
        minutes = abs((after[4] - before[4]).total_seconds()) / 60
        return f"planned start moved by {minutes:g} min" if minutes < 60 else (
            "planned start moved by 1 h or more")  # fmt: skip
    if "action" in changed:
        return "action changed"
    return " and ".join(changed) + " changed"


if __name__ == "__main__":
    main(sys.argv[1:])
