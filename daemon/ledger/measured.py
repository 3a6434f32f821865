"""The ledger's measured runs, as a restart relearns the recalibration factors from them
(:func:`daemon.learning.factors.measured_history`): one query over outcomes, jobs and decisions,
oldest outcome first, instead of a job read and a decision read per outcome row; or only those after
a :class:`Watermark` (a recalibration checkpoint's, :mod:`daemon.learning.checkpoint`), read on
the ``outcomes_measured`` index without a scan of the older rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from daemon.ledger.base import Connection
from daemon.ledger.values import dt, req_dt

__all__ = ["MEASURED", "MeasuredRun", "MeasuredRuns", "Watermark", "measured", "position_sql"]


def measured(table: str = "") -> str:
    """The SQL condition that an outcome row (of ``table``, an alias, when given) is a measured
    run, whatever its job's state: the ``outcomes_measured`` index's condition, written as it
    is there so SQLite uses that index."""
    column = f"{table}." if table else ""
    return f"{column}measured_energy_j IS NOT NULL AND {column}duration_s"


MEASURED = measured()


@dataclass(frozen=True, slots=True)
class Watermark:
    """A position in the order :meth:`MeasuredRuns.measured_runs` reads outcome rows in: the
    row's ``recorded_at`` (as stored) and its rowid."""

    recorded_at: str
    rowid: int


@dataclass(frozen=True, slots=True)
class MeasuredRun:
    """A succeeded job's run whose energy was measured (by carbond's GPU meter or by its
    executor: its outcome row has a ``measured_energy_j`` and a non-zero ``duration_s``).

    ``request_key`` is the job's stored request (``spec_json``) without its ``id`` and
    ``deadline``, as SQLite writes JSON: two jobs with the same key have requests equal in
    every other field (the job's id and deadline are the ``jobs`` row's); None when the stored
    text is not JSON or this SQLite has no JSON functions. ``gpu``: the GPU type of the job's
    latest decision (None: no decision, or none with a GPU). ``simulated``: it ran on the
    ``simulated`` executor (no process ran: its times and energy are the simulation's).
    """

    job_id: str
    request_key: str | None
    submitted_at: datetime
    deadline: datetime | None
    gpu: str | None
    measured_energy_j: float
    duration_s: float
    simulated: bool = False


class MeasuredRuns(Connection):
    """Measured runs (a mixin of :class:`daemon.ledger.Ledger`)."""

    _json_functions: bool | None = None  # whether this SQLite has json_valid / json_remove

    def measured_runs(
        self, after: Watermark | None = None, through: Watermark | None = None
    ) -> Iterator[MeasuredRun]:
        """Every succeeded job's measured run, by its outcome's ``recorded_at``, then the order
        the outcome rows were written in (rowid); only those after ``after`` and up to
        ``through`` when given. Read from the ``outcomes_measured`` index, outcomes first."""
        if self._json_functions is None:
            try:
                self._db.execute("SELECT json_remove('{}', '$.id')").fetchone()
                self._json_functions = True
            except sqlite3.Error:
                self._json_functions = False
        key = _REQUEST_KEY if self._json_functions else "NULL"
        after_cond, after_params = position_sql(">", after, "o")
        through_cond, through_params = position_sql("<=", through, "o")
        rows = self._exec(
            f"SELECT o.job_id, {key}, j.submitted_at, j.deadline,"
            " (SELECT d.gpu FROM decisions d WHERE d.job_id = o.job_id ORDER BY d.seq DESC"
            " LIMIT 1), o.measured_energy_j, o.duration_s,"
            " (SELECT r.executor = 'simulated' FROM runs r WHERE r.job_id = o.job_id)"
            " FROM outcomes o CROSS JOIN jobs j ON j.job_id = o.job_id"  # outcomes first
            f" WHERE {measured('o')} AND j.state = 'succeeded'{after_cond}{through_cond}"
            " ORDER BY o.recorded_at, o.rowid",
            (*after_params, *through_params),
        )
        for job_id, request_key, submitted, deadline, gpu, energy_j, seconds, simulated in rows:
            yield MeasuredRun(job_id, request_key, req_dt(submitted), dt(deadline), gpu,
                              float(energy_j), float(seconds), bool(simulated))  # fmt: skip

    def measured_position(self, after: Watermark | None, rows: int | None) -> Watermark | None:
        """The position of the ``rows``-th measured outcome row (any job state) after
        ``after`` (from the first when None), or of the last one when there are fewer or
        ``rows`` is None; None when there is none. On the ``outcomes_measured`` index."""
        bound, params = position_sql(">", after)
        row = None
        if rows is not None:
            row = self._exec(
                f"SELECT recorded_at, rowid FROM outcomes WHERE {MEASURED}{bound}"
                f" ORDER BY recorded_at, rowid LIMIT 1 OFFSET {max(0, int(rows) - 1)}",
                params,
            ).fetchone()
        if row is None:
            row = self._exec(
                f"SELECT recorded_at, rowid FROM outcomes WHERE {MEASURED}{bound}"
                " ORDER BY recorded_at DESC, rowid DESC LIMIT 1",
                params,
            ).fetchone()
        return None if row is None else Watermark(str(row[0]), int(row[1]))


def position_sql(
    op: str, mark: Watermark | None, table: str = ""
) -> tuple[str, tuple[str, int] | tuple[()]]:
    """The SQL condition (`` AND ...``; empty for None) and parameters of the outcome rows
    (of ``table``, an alias, when given) whose position in the order measured runs are read
    compares to ``mark``'s by ``op`` (``">"``: after it, ``"<="``: up to it)."""
    if mark is None:
        return "", ()
    column = f"{table}." if table else ""
    return f" AND ({column}recorded_at, {column}rowid) {op} (?, ?)", (mark.recorded_at, mark.rowid)


_REQUEST_KEY = (
    "CASE WHEN json_valid(j.spec_json) THEN json_remove(j.spec_json, '$.id', '$.deadline') END"
)
