"""The ledger's measured runs, as a restart relearns the recalibration factors from them
(:func:`daemon.learning.measured_history`): one query over outcomes, jobs and decisions, oldest
outcome first, instead of a job read and a decision read per outcome row; or only those after a
:class:`Watermark` (a recalibration checkpoint's, :mod:`daemon.learning_checkpoint`), read on
the ``outcomes_measured`` index without a scan of the older rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from daemon.ledger.base import Connection, dt, req_dt

__all__ = ["MEASURED", "MeasuredRun", "MeasuredRuns", "Watermark"]

MEASURED = "measured_energy_j IS NOT NULL AND duration_s"
"""Which outcome rows are measured runs (whatever their job's state): the ``outcomes_measured``
index's condition, written as it is there so SQLite uses that index."""


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
    latest decision (None: no decision, or none with a GPU). ``position``: where its outcome
    row is in the order they are read in.
    """

    job_id: str
    request_key: str | None
    submitted_at: datetime
    deadline: datetime | None
    gpu: str | None
    measured_energy_j: float
    duration_s: float
    position: Watermark


class MeasuredRuns(Connection):
    """Measured runs (a mixin of :class:`daemon.ledger.Ledger`)."""

    _json_functions: bool | None = None  # whether this SQLite has json_valid / json_remove

    def measured_runs(
        self, after: Watermark | None = None, limit: int | None = None
    ) -> Iterator[MeasuredRun]:
        """Every succeeded job's measured run, by its outcome's ``recorded_at``, then the order
        the outcome rows were written in (rowid); only those after ``after`` when given, and at
        most ``limit`` of them. Read from the ``outcomes_measured`` index, outcomes first."""
        if self._json_functions is None:
            try:
                self._db.execute("SELECT json_remove('{}', '$.id')").fetchone()
                self._json_functions = True
            except sqlite3.Error:
                self._json_functions = False
        key = _REQUEST_KEY if self._json_functions else "NULL"
        rows = self._exec(
            f"SELECT o.job_id, {key}, j.submitted_at, j.deadline,"
            " (SELECT d.gpu FROM decisions d WHERE d.job_id = o.job_id ORDER BY d.seq DESC"
            " LIMIT 1), o.measured_energy_j, o.duration_s, o.recorded_at, o.rowid"
            " FROM outcomes o CROSS JOIN jobs j ON j.job_id = o.job_id"  # outcomes first
            " WHERE o.measured_energy_j IS NOT NULL AND o.duration_s AND j.state = 'succeeded'"
            + ("" if after is None else " AND (o.recorded_at, o.rowid) > (?, ?)")
            + " ORDER BY o.recorded_at, o.rowid"
            + ("" if limit is None else f" LIMIT {int(limit)}"),
            () if after is None else (after.recorded_at, after.rowid),
        )
        for job_id, key, submitted, deadline, gpu, energy_j, seconds, at, rowid in rows:
            yield MeasuredRun(job_id, key, req_dt(submitted), dt(deadline), gpu, float(energy_j),
                              float(seconds), Watermark(at, rowid))  # fmt: skip


_REQUEST_KEY = (
    "CASE WHEN json_valid(j.spec_json) THEN json_remove(j.spec_json, '$.id', '$.deadline') END"
)
