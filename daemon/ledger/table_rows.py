"""The ledger's tables read whole, for ``carbond export`` and ``carbond report``: every row of
an exportable table, or those of a period as the report counts it, read one at a time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from daemon.ledger.accounting import period_where
from daemon.ledger.base import Connection
from daemon.ledger.errors import LedgerError
from daemon.states import FINAL_STATES

__all__ = ["EXPORTABLE", "TableRows"]

EXPORTABLE = ("jobs", "transitions", "decisions", "runs", "outcomes", "intensity_samples")


class TableRows(Connection):
    """The exportable tables' rows (:data:`EXPORTABLE`)."""

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of ``table`` as dicts.

        Raises:
            LedgerError: not a ledger table.
        """
        columns, rows = self.table_rows(table)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def table_rows(
        self, table: str, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
        """``table``'s column names (an empty table has them too) and its rows, read one at
        a time as they are iterated (an export of a large table holds one row at a time).

        With ``since`` or ``until``, the rows of the period ``[since, until)`` as ``carbond
        report`` counts it: a job's rows (jobs, transitions, decisions, runs, outcomes) when
        the job finished in it (its outcome's ``finished_at``), a sample when its ``at`` is in
        it; open ends are unbounded. A job that ended without an outcome (cancelled or
        expired before it started) is in the period it ended in (``updated_at``), an expired
        one in that of its deadline, where the report counts it (``expired_unstarted``):
        until 2026-12-07 such a job was in no period, so the exports of every month together
        lacked it.

        Raises:
            LedgerError: not a ledger table; SQLite failed, here or while iterating.
        """
        if table not in EXPORTABLE:
            raise LedgerError(f"cannot export {table!r} (tables: {', '.join(EXPORTABLE)})")
        where, params = "", list[Any]()
        if since is not None or until is not None:
            if table == "intensity_samples":
                where, params = period_where("at", since, until)
                where = " WHERE 1 = 1" + where
            else:
                where, params = _jobs_of_period(since, until)
        cursor = self._exec(f"SELECT * FROM {table}{where}", params)
        cursor.row_factory = None  # plain tuples
        return [d[0] for d in cursor.description], self._iterate(cursor)


_UNRUN = "state IN ({}) AND job_id NOT IN (SELECT job_id FROM outcomes)".format(
    ", ".join(f"'{state}'" for state in sorted(FINAL_STATES))
)


def _jobs_of_period(since: datetime | None, until: datetime | None) -> tuple[str, list[Any]]:
    """`` WHERE job_id IN (...)``: the jobs that ended in ``[since, until)`` (see
    :meth:`TableRows.table_rows`), and its parameters."""
    ran, ran_params = period_where("finished_at", since, until)
    expired, expired_params = period_where("deadline", since, until)
    ended, ended_params = period_where("updated_at", since, until)
    where = (
        f" WHERE job_id IN (SELECT job_id FROM outcomes WHERE 1 = 1{ran}"
        f" UNION ALL SELECT job_id FROM jobs WHERE {_UNRUN} AND state = 'expired'{expired}"
        f" UNION ALL SELECT job_id FROM jobs WHERE {_UNRUN} AND state != 'expired'{ended})"
    )
    return where, [*ran_params, *expired_params, *ended_params]
