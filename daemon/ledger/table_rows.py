"""The ledger's tables read whole, for ``carbond export`` and ``carbond report``: every row of
an exportable table, or those of a period as the report counts it, read one at a time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from daemon.ledger.accounting import period_where
from daemon.ledger.base import Connection
from daemon.ledger.errors import LedgerError

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
        it; open ends are unbounded.

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
                inner, params = period_where("finished_at", since, until)
                where = f" WHERE job_id IN (SELECT job_id FROM outcomes WHERE 1 = 1{inner})"
        cursor = self._exec(f"SELECT * FROM {table}{where}", params)
        cursor.row_factory = None  # plain tuples
        return [d[0] for d in cursor.description], self._iterate(cursor)
