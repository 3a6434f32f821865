"""The waiting jobs' order, kept between rounds, so the service's two questions of every
round (which waiting jobs to settle, which are the most urgent) need no scan of ``jobs``.

The daemon is the ledger's one writer, and a waiting job changes only through its own
``add_jobs``, ``transition`` and ``request_cancel``, which update the index as they write. A
commit by any other connection changes SQLite's ``PRAGMA data_version``, and then the index is
read again, as after a rollback or a job coming back to waiting that it does not know (a
requeued one: its order columns are not at hand). Times are compared as the stored text, as
SQLite compares them (its BINARY collation orders UTF-8 as Python orders ``str``).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from daemon.states import WAITING_STATES

__all__ = ["Waiting", "WaitingIndex"]

_stamps = itertools.count(1)  # shared by every index: a stamp is never given twice


@dataclass(slots=True)
class Waiting:
    """One waiting job as the index holds it. ``stamp`` is new whenever its mutable columns
    (state, ``updated_at``, ``cancel_requested_at``) change or the index is read again: a
    caller that saw the same stamp saw the same columns."""

    job_id: str
    order: tuple[Any, ...]  # the ORDER BY of most_urgent_waiting, as a Python sort key
    deadline: str | None
    state: str
    updated_at: str
    cancel_requested_at: str | None
    stamp: int

    def mutable(self) -> list[Any]:
        """``[state, updated_at, cancel_requested_at]``."""
        return [self.state, self.updated_at, self.cancel_requested_at]


def _order(job_id: str, priority: Any, deadline: str | None, submitted_at: str) -> tuple[Any, ...]:
    """``priority DESC, deadline IS NULL, deadline, submitted_at, job_id`` (NOT NULL
    priority and submission; job ids are unique, so no two keys tie)."""
    return (-priority, deadline is None, deadline or "", submitted_at, job_id)


class WaitingIndex:
    """The ``queued`` and ``planned`` jobs by id, with the columns the round's questions
    read, and their order kept sorted (a job's order columns never change while it waits).
    Built from rows ``(job_id, state, updated_at, cancel_requested_at, priority, deadline,
    submitted_at)``."""

    COLUMNS = "job_id, state, updated_at, cancel_requested_at, priority, deadline, submitted_at"

    def __init__(self, rows: Iterable[Any]) -> None:
        self._jobs: dict[str, Waiting] = {}
        for job_id, state, updated_at, cancel, priority, deadline, submitted_at in rows:
            order = _order(job_id, priority, deadline, submitted_at)
            self._jobs[job_id] = Waiting(job_id, order, deadline, state, updated_at, cancel,
                                         next(_stamps))  # fmt: skip
        self._order = sorted(job.order for job in self._jobs.values())

    def added(
        self,
        job_id: str,
        priority: Any,
        deadline: str | None,
        submitted_at: str,
        updated_at: str,
        state: str = "queued",
        cancel_requested_at: str | None = None,
    ) -> None:
        """A job row was inserted in a waiting state."""
        self._drop(job_id)
        order = _order(job_id, priority, deadline, submitted_at)
        self._jobs[job_id] = Waiting(job_id, order, deadline, state, updated_at,
                                     cancel_requested_at, next(_stamps))  # fmt: skip
        bisect.insort(self._order, order)

    def _drop(self, job_id: str) -> Waiting | None:
        job = self._jobs.pop(job_id, None)
        if job is not None:
            del self._order[bisect.bisect_left(self._order, job.order)]
        return job

    def moved(self, job_id: str, state: str, updated_at: str) -> bool:
        """``job_id`` went to ``state`` at ``updated_at``; False when it came back to waiting
        unknown to the index (the caller reads the index again)."""
        if state not in WAITING_STATES:
            self._drop(job_id)
            return True
        job = self._jobs.get(job_id)
        if job is None:
            return False
        job.state, job.updated_at, job.stamp = state, updated_at, next(_stamps)
        return True

    def cancel_requested(self, job_id: str, at: str) -> None:
        """Its owner asked to cancel ``job_id`` (the first request counts, as stored)."""
        job = self._jobs.get(job_id)
        if job is not None and job.cancel_requested_at is None:
            job.cancel_requested_at, job.stamp = at, next(_stamps)

    def most_urgent(self, limit: int) -> list[Waiting]:
        """At most ``limit`` waiting jobs, most urgent first (as
        ``Ledger.most_urgent_waiting`` orders them)."""
        keys = self._order if limit < 0 else self._order[:limit]  # SQLite: a negative LIMIT is none
        jobs = self._jobs
        return [jobs[key[-1]] for key in keys]

    def to_settle(self, now: str) -> list[str]:
        """The waiting jobs with a cancel request or a deadline at or before ``now``."""
        return [
            job_id
            for job_id, j in self._jobs.items()
            if j.cancel_requested_at is not None or (j.deadline is not None and j.deadline <= now)
        ]

    def __len__(self) -> int:
        return len(self._jobs)
