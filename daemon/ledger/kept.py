"""The rows the ledger wrote about the jobs it added itself, kept so they are not read back.

The daemon is the ledger's one writer, and a job it ingested has no row that it did not write
itself. For such a job the ledger keeps, as stored, its job row, its latest decision row, the
run-now counterfactual of its first decision that had one, and its run row: the service reads
them at every dispatch and ending (and the planner the latest decision of every new job),
which was a third of a replay's statements. Values are kept as SQLite hands them back (a REAL
column turns an int into a float and NaN into NULL), so an answer from here equals the one a
read would give; the latest decision is kept as written (a round writes far more of them than
are read back) and turned into what SQLite hands back when it is read
(:mod:`daemon.ledger.decisions`).

A job leaves when it reaches a final state; everything is forgotten when a transaction rolls
back (the next answers are read, then from the committed rows). A job added while
:data:`JOBS_KEPT` jobs are kept is not kept (its answers are read).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["JOBS_KEPT", "KeptRows", "Rows", "integer", "real"]

JOBS_KEPT: Final = 20_000  # ~3 KB a job: at most ~60 MB (as the parsed requests, store.py)

Row = dict[str, Any]


@dataclass(slots=True)
class Rows:
    """One job's rows as stored (None: none written)."""

    job: Row  # the jobs row
    decision: tuple[Any, ...] | None = None  # the latest decision row, as written
    run_now_json: str | None = None  # the first decision's counterfactual that had one
    # its total_g as the JSON reads back (None: not known without parsing the JSON)
    run_now_total_g: float | None = None
    # the Alternative that JSON was written from, where the JSON reads back as exactly its
    # ``alternative_json`` (not parsed: :meth:`daemon.ledger.decisions.Decisions.counterfactual`)
    run_now: Any = None
    run: Row | None = None


class KeptRows:
    """The kept rows of the jobs this ledger connection added, by job id."""

    def __init__(self) -> None:
        self._jobs: dict[str, Rows] = {}

    def added(self, job: Row) -> None:
        """The ``jobs`` row ``job`` was inserted here: nothing else was written about it yet."""
        if len(self._jobs) < JOBS_KEPT:
            self._jobs[job["job_id"]] = Rows(job)

    def get(self, job_id: str) -> Rows | None:
        """The job's rows, or None when they must be read."""
        return self._jobs.get(job_id)

    def ended(self, job_id: str) -> None:
        """``job_id`` reached a final state: nothing more is asked about it."""
        self._jobs.pop(job_id, None)

    def forget(self) -> None:
        """A transaction rolled back: what was kept may not have been committed."""
        self._jobs.clear()

    def __len__(self) -> int:
        return len(self._jobs)


def real(value: Any) -> float | None:
    """``value`` as a REAL column returns it (None and NaN: NULL)."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def integer(value: Any) -> Any:
    """``value`` as an INTEGER column returns it (an integral float: an int)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
