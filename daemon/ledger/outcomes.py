"""The ledger's outcome rows: one per finished job (its measured energy, grams and run-now
counterfactual, written with the run's end: :mod:`daemon.ledger.run_batches`), and the totals over
them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daemon.ledger.base import Connection
from daemon.ledger.values import ts
from daemon.states import FINAL_STATES

if TYPE_CHECKING:
    from daemon.ledger.run_batches import RunEnd

__all__ = ["Outcomes"]


class Outcomes(Connection):
    """Outcome rows (a mixin of :class:`daemon.ledger.Ledger`)."""

    def record_outcome(self, job_id: str, at: datetime, **columns: Any) -> None:
        """Insert or replace the outcome row of ``job_id`` (columns of the ``outcomes`` table)."""
        names = ["job_id", "recorded_at", *columns]
        self._exec(
            f"INSERT OR REPLACE INTO outcomes ({', '.join(names)})"
            f" VALUES ({', '.join('?' * len(names))})",
            (job_id, ts(at), *columns.values()),
        )

    def _record_outcomes(self, ends: Sequence[RunEnd], when: str | None) -> None:
        """:meth:`record_outcome` of each of ``ends`` in order: one statement per stretch of
        ends with the same columns."""
        i = 0
        while i < len(ends):
            names = tuple(ends[i].columns)
            j = i + 1
            while j < len(ends) and tuple(ends[j].columns) == names:
                j += 1
            self._exec_many(
                f"INSERT OR REPLACE INTO outcomes (job_id, recorded_at, {', '.join(names)})"
                f" VALUES ({', '.join('?' * (len(names) + 2))})",
                [(e.job_id, when, *e.columns.values()) for e in ends[i:j]],
            )
            i = j

    def outcome(self, job_id: str) -> dict[str, Any] | None:
        """The outcome row of ``job_id`` as a dict, if recorded."""
        row = self._exec("SELECT * FROM outcomes WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else dict(row)

    def grams_totals(self, states: Sequence[str] = ()) -> dict[str, float]:
        """Totals over the jobs in ``states`` (all when empty): ``jobs``; ``expected_total_g``
        (their latest decisions' expected grams); ``finished`` and ``measured_total_g`` (jobs
        with an outcome's grams); ``saved_g`` (run-now counterfactual minus real grams, over
        the finished jobs that have both); ``ended_without_run`` (jobs in a final state that
        never launched: rejected, expired, cancelled before their start)."""
        where = f"WHERE j.state IN ({','.join('?' * len(states))})" if states else ""
        final = ",".join(f"'{s}'" for s in sorted(FINAL_STATES))
        row = self._exec(
            "SELECT count(*), coalesce(sum(d.expected_total_g), 0), count(o.total_g),"
            " coalesce(sum(o.total_g), 0), coalesce(sum(o.run_now_total_g - o.total_g), 0),"
            f" coalesce(sum(j.state IN ({final}) AND o.job_id IS NULL AND NOT EXISTS"
            " (SELECT 1 FROM runs r WHERE r.job_id = j.job_id)), 0)"
            " FROM jobs j LEFT JOIN outcomes o ON o.job_id = j.job_id"
            " LEFT JOIN decisions d ON d.seq ="
            " (SELECT max(seq) FROM decisions WHERE job_id = j.job_id) " + where,
            list(states),
        ).fetchone()
        names = ("jobs", "expected_total_g", "finished", "measured_total_g", "saved_g",
                 "ended_without_run")  # fmt: skip
        return {name: float(value) for name, value in zip(names, row, strict=True)}
