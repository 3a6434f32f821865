"""The ledger's running totals, kept by the service without rescanning the ledger (pure).

The service loads :meth:`daemon.ledger.Ledger.outcome_totals` once at start and adds each
finished job's outcome columns here, so exporting totals costs O(1) per job (replay finishes
hundreds of thousands of jobs through the same service).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from daemon.isotime import isoformat

__all__ = ["add_expired", "add_outcome", "add_outcomes"]


def add_outcome(
    totals: Mapping[str, float], columns: Mapping[str, Any], deadline: datetime | None
) -> dict[str, float]:
    """``totals`` with one more outcome row (``columns``; ``deadline`` is its job's, to count
    a miss when it finished after it). Same sums as ``outcome_totals``."""
    return add_outcomes(totals, [(columns, deadline)])


def add_outcomes(
    totals: Mapping[str, float],
    rows: Sequence[tuple[Mapping[str, Any], datetime | None]],
) -> dict[str, float]:
    """``totals`` with more outcome rows, each ``(columns, deadline)`` as for
    :func:`add_outcome`, added in order (the same sums as adding them one at a time)."""
    out = dict(totals)

    def add(key: str, value: Any) -> None:
        out[key] = out.get(key, 0.0) + (float(value) if value is not None else 0.0)

    for columns, deadline in rows:
        add("jobs", 1)
        for key in _SUMMED:
            add(key, columns.get(key))
        total, run_now = columns.get("total_g"), columns.get("run_now_total_g")
        if total is not None and run_now is not None:
            add("run_now_total_g", run_now)
            add("saved_g", run_now - total)
        finished = columns.get("finished_at")
        if deadline is not None and finished is not None and finished > isoformat(deadline):
            add("deadlines_missed", 1)
    return out


_SUMMED = ("energy_j", "measured_energy_j", "operational_g", "embodied_g", "total_g")


def add_expired(totals: Mapping[str, float]) -> dict[str, float]:
    """``totals`` with one more job that expired before starting (a missed deadline)."""
    out = dict(totals)
    out["deadlines_missed"] = out.get("deadlines_missed", 0.0) + 1
    return out
