"""The ledger's two questions about the waiting jobs, asked every round: which to settle
(a cancel request or a passed deadline) and which are the most urgent. Both are answered from
the waiting jobs' index (:mod:`daemon.ledger.waiting`), read again only when another
connection committed; the records of the most urgent ones are kept between rounds and read
back only when their mutable columns changed."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daemon.ledger.base import Connection
from daemon.ledger.records import JobRecord
from daemon.ledger.values import ts
from daemon.ledger.waiting import Waiting, WaitingIndex

if TYPE_CHECKING:
    from daemon.ledger.kept import KeptRows

__all__ = ["WaitingJobs"]


class WaitingJobs(Connection):
    """The waiting jobs' reads (a mixin of :class:`daemon.ledger.Ledger`, whose writes of
    jobs keep :attr:`_waiting_index` up to date)."""

    # The records :meth:`most_urgent_waiting` returned last, with the index's stamp and the
    # columns that may change (daemon.ledger.waiting).
    _waiting: dict[str, tuple[int, list[Any], JobRecord]] | None = None
    # The waiting jobs' order (daemon.ledger.waiting), as of SQLite's data_version then.
    _waiting_index: WaitingIndex | None = None
    _waiting_version: int | None = None

    if TYPE_CHECKING:  # the Ledger's (daemon.ledger.store): the rows of the jobs added here

        @property
        def _kept(self) -> KeptRows: ...

        def _job(self, row: sqlite3.Row | dict[str, Any]) -> JobRecord: ...

    def waiting_to_settle(self, now: datetime) -> list[JobRecord]:
        """Queued or planned jobs whose owner asked to cancel or whose deadline is at or
        before ``now`` (from the waiting index; read only when there are some)."""
        ids = self._waiting_jobs().to_settle(ts(now) or "")
        if not ids:
            return []
        rows = self._exec(
            "SELECT * FROM jobs WHERE state IN ('queued', 'planned') AND "
            "(cancel_requested_at IS NOT NULL OR (deadline IS NOT NULL AND deadline <= ?)) "
            f"AND job_id IN ({','.join('?' * len(ids))}) ORDER BY submitted_at, job_id",
            (ts(now), *ids),
        )
        return [self._job(row) for row in rows]

    def _waiting_jobs(self) -> WaitingIndex:
        """The waiting jobs' index: kept up to date by this connection's writes, read again
        when another connection committed (``PRAGMA data_version``) or after a rollback."""
        version = self._exec("PRAGMA data_version").fetchone()[0]
        if self._waiting_index is None or version != self._waiting_version:
            self._waiting_index = WaitingIndex(self._exec(
                f"SELECT {WaitingIndex.COLUMNS} FROM jobs WHERE state IN ('queued', 'planned')"
            ))  # fmt: skip
            self._waiting_version = version
        return self._waiting_index

    def most_urgent_waiting(self, limit: int) -> list[JobRecord]:
        """At most ``limit`` queued or planned jobs, most urgent first: higher priority, then
        earlier deadline (none last), then submitted earlier."""
        order = self._waiting_jobs().most_urgent(limit)
        # The service asks every round: a job whose mutable columns (state, updated_at,
        # cancel_requested_at) are as last time is the same record, only the others are read.
        # The index's stamp says they are the same without comparing them.
        known = self._waiting or {}
        kept: dict[str, tuple[int, list[Any], JobRecord]] = {}
        missing: dict[str, Waiting] = {}
        records = []  # the answer, unless some must be read
        for job in order:
            job_id = job.job_id
            entry = known.get(job_id)
            if entry is not None and entry[0] == job.stamp:
                kept[job_id] = entry
                records.append(entry[2])
                continue
            mutable = job.mutable()
            if entry is not None and entry[1] == mutable:  # the index was read again
                kept[job_id] = (job.stamp, mutable, entry[2])
                records.append(entry[2])
                continue
            written = self._kept.get(job_id)  # the rows this ledger added: not read back
            if written is not None and _mutable(written.job) == mutable:
                kept[job_id] = entry = (job.stamp, mutable, self._job(written.job))
                records.append(entry[2])
            else:
                missing[job_id] = job
        if not missing:
            self._waiting = kept
            return records
        ids = list(missing)
        for chunk in range(0, len(ids), 500):
            part = ids[chunk : chunk + 500]
            rows = self._exec(
                f"SELECT * FROM jobs WHERE job_id IN ({','.join('?' * len(part))})", part
            )
            for row in rows:
                job, mutable = missing[row["job_id"]], _mutable(row)
                stamp = job.stamp if mutable == job.mutable() else -1  # compared next time
                kept[job.job_id] = (stamp, mutable, self._job(row))
        self._waiting = kept
        return [kept[job.job_id][2] for job in order if job.job_id in kept]


def _mutable(row: sqlite3.Row | dict[str, Any]) -> list[Any]:
    """The columns of a job row that change while it waits."""
    return [row["state"], row["updated_at"], row["cancel_requested_at"]]
