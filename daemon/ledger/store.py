"""The ledger: SQLite in WAL mode, one writer (the daemon), any number of readers (the CLI).

Every change that must be atomic happens inside :meth:`Ledger.transaction` (``BEGIN
IMMEDIATE`` ... ``COMMIT``): ingestion commits the queue offset with the job rows, dispatch
commits the ``running`` transition with the run row before the executor starts anything.
``synchronous=FULL``: a commit survives power loss, so a launched job is never forgotten.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from daemon.ledger.accounting import Accounting
from daemon.ledger.checkpoint import Checkpoints
from daemon.ledger.decisions import Decisions
from daemon.ledger.errors import UnknownJobError
from daemon.ledger.kept import KeptRows, integer
from daemon.ledger.measured import MeasuredRuns
from daemon.ledger.outcomes import Outcomes
from daemon.ledger.queue_state import QueueState
from daemon.ledger.records import JobRecord, TransitionRecord
from daemon.ledger.run_batches import RunBatches
from daemon.ledger.spec_json import plain_spec_json
from daemon.ledger.stopping import StoppingRuns
from daemon.ledger.table_rows import TableRows
from daemon.ledger.values import dt, req_dt, ts
from daemon.ledger.waiting_jobs import WaitingJobs
from daemon.queue.job_request import JobRequest
from daemon.states import ACTIVE_STATES, FINAL_STATES, TRANSITIONS, check_transition

__all__ = ["Ledger"]


class Ledger(
    WaitingJobs,
    Decisions,
    RunBatches,
    Outcomes,
    StoppingRuns,
    MeasuredRuns,
    Checkpoints,
    Accounting,
    QueueState,
    TableRows,
):
    """The daemon's database: jobs, transitions, decisions, runs, outcomes, intensity samples
    and queue offsets (see :mod:`daemon.ledger.schema`)."""

    # The finished jobs per final state as of transitions row ``seq`` (counts_by_state).
    _finished: tuple[int, dict[str, int]] | None = None
    # Parsed requests by their stored JSON text (a job's spec never changes once stored): the
    # service reads the waiting jobs every round; parsing them again each time was most of it.
    _requests: dict[str, JobRequest] | None = None
    # The decision, counterfactual and run rows of the jobs added here (daemon.ledger.kept).
    _kept_rows: KeptRows | None = None

    @property
    def _kept(self) -> KeptRows:
        if self._kept_rows is None:
            self._kept_rows = KeptRows()
        return self._kept_rows

    def _rolled_back(self) -> None:
        self._run_writes += 1
        self._kept.forget()
        self._waiting_index = None
        self._finished = None
        self._samples.forget()

    # -- jobs -------------------------------------------------------------------------------

    def add_job(self, request: JobRequest, uid: int, gid: int, source: str, now: datetime) -> None:
        """Insert a new ``queued`` job (``request.job_id`` must be set and unused)."""
        self.add_jobs([(request, uid, gid, source, now)])

    def add_jobs(self, jobs: Sequence[tuple[JobRequest, int, int, str, datetime]]) -> None:
        """:meth:`add_job` for each ``(request, uid, gid, source, now)``, in order (two
        statements for them all: the caller holds the transaction)."""
        rows, created = [], []
        for request, uid, gid, source, now in jobs:
            assert request.job_id is not None
            at = ts(now)
            if request.is_plain():  # what parsing spec_json would rebuild: kept, not parsed
                deadline, spec_json = plain_spec_json(request)
                self._remember_request(spec_json, request)
            else:
                spec = request.to_json()
                deadline, spec_json = spec["deadline"], json.dumps(spec)
            rows.append((request.job_id, integer(uid), integer(gid), request.name,
                         integer(request.priority), at, deadline, spec_json, source,
                         at))  # fmt: skip
            created.append((request.job_id, at, f"ingested from {source}"))
        self._exec_many(
            "INSERT INTO jobs (job_id, uid, gid, name, state, priority, submitted_at, deadline,"
            " spec_json, source, updated_at) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self._exec_many(
            "INSERT INTO transitions (job_id, from_state, to_state, at, reason)"
            " VALUES (?, NULL, 'queued', ?, ?)",
            created,
        )
        kept, index = self._kept, self._waiting_index
        for row in rows:
            kept.added(dict(zip(_JOB_COLUMNS, row, strict=True), **_UNSET_JOB_COLUMNS))
            if index is not None:  # job_id, uid, gid, name, priority, submitted, deadline, ...
                index.added(row[0], row[4], row[6], str(row[5]), str(row[9]))

    def job_owner(self, job_id: str) -> int | None:
        """The uid that submitted ``job_id``, or None when there is no such job."""
        row = self._exec("SELECT uid FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else int(row[0])

    def job(self, job_id: str) -> JobRecord:
        """The job called ``job_id``.

        Raises:
            UnknownJobError: no such job.
        """
        kept = self._kept.get(job_id)
        if kept is not None:
            return self._job(kept.job)
        row = self._exec("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJobError(job_id)
        return self._job(row)

    def jobs(self, states: Sequence[str] = (), limit: int | None = None) -> list[JobRecord]:
        """Jobs in ``states`` (all when empty), oldest first."""
        sql = "SELECT * FROM jobs"
        params: list[Any] = list(states)
        if states:
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
        sql += " ORDER BY submitted_at, job_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [self._job(row) for row in self._exec(sql, params)]

    def iter_jobs(
        self, states: Sequence[str] = (), limit: int | None = None, offset: int = 0
    ) -> Iterator[JobRecord]:
        """Like :meth:`jobs` from ``offset``, one row at a time (constant memory)."""
        sql = "SELECT * FROM jobs"
        params: list[Any] = list(states)
        if states:
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
        sql += " ORDER BY submitted_at, job_id LIMIT ? OFFSET ?"
        params += [-1 if limit is None else limit, offset]
        for row in self._exec(sql, params):
            yield self._job(row)

    def counts_by_state(self) -> dict[str, int]:
        """How many jobs are in each state (states without jobs are absent), read in one
        snapshot without counting the history each time: the active jobs on the ``jobs_state``
        index, the finished ones counted once, then followed through the transitions added
        since (a final state is never left and no job is deleted, so each finished job moved
        into its state once, with a ``transitions`` row written in the same transaction)."""
        finals = sorted(FINAL_STATES)
        marks = ", ".join("?" * len(finals))
        with self.snapshot():
            last = int(self._exec("SELECT coalesce(max(seq), 0) FROM transitions").fetchone()[0])
            kept = self._finished
            if kept is None:
                finished = dict.fromkeys(finals, 0)
                rows = self._exec(
                    f"SELECT state, count(*) FROM jobs WHERE state IN ({marks}) GROUP BY state",
                    finals,
                )
            else:
                finished = dict(kept[1])
                rows = self._exec(
                    "SELECT to_state, count(*) FROM transitions WHERE seq > ? AND seq <= ?"
                    f" AND to_state IN ({marks}) GROUP BY to_state",
                    (kept[0], last, *finals),
                )
            for state, n in rows:
                finished[str(state)] += int(n)
            active = self._exec(
                "SELECT state, count(*) FROM jobs WHERE state IN (?, ?, ?) GROUP BY state",
                sorted(ACTIVE_STATES),
            ).fetchall()
        self._finished = (last, finished)
        counts = {str(state): int(n) for state, n in active}
        counts.update((state, n) for state, n in finished.items() if n > 0)
        return dict(sorted(counts.items()))

    def transition(
        self, job_id: str, new_state: str, at: datetime, reason: str, *, seen: str | None = None
    ) -> str:
        """Move ``job_id`` to ``new_state``, recording why; returns the previous state.
        ``seen``: the state the caller read; a legal move from it is made only if the job is
        still in it, without reading the state first (else as without ``seen``).

        Raises:
            UnknownJobError: no such job.
            InvalidTransitionError: the state machine forbids it.
        """
        self._run_writes += 1  # counted before writing: a failed write may have changed it
        if seen is not None and new_state in TRANSITIONS.get(seen, ()):
            cursor = self._exec(
                "UPDATE jobs SET state = ?, updated_at = ? WHERE job_id = ? AND state = ?",
                (new_state, ts(at), job_id, seen),
            )
            if cursor.rowcount == 1:
                self._transitioned(job_id, seen, new_state, at, reason)
                return seen
        current = self.job_state(job_id)
        check_transition(job_id, current, new_state)
        self._exec(
            "UPDATE jobs SET state = ?, updated_at = ? WHERE job_id = ?",
            (new_state, ts(at), job_id),
        )
        self._transitioned(job_id, current, new_state, at, reason)
        return current

    def _transitioned(
        self, job_id: str, old_state: str, new_state: str, at: datetime, reason: str
    ) -> None:
        """After the jobs row moved: its transitions row, the kept row and waiting index."""
        self._exec(
            "INSERT INTO transitions (job_id, from_state, to_state, at, reason)"
            " VALUES (?, ?, ?, ?, ?)",
            (job_id, old_state, new_state, ts(at), reason),
        )
        self._kept_state(job_id, new_state, at)

    def _kept_state(self, job_id: str, state: str, at: datetime) -> None:
        """The kept job row and waiting index after a transition (a job in a final state is
        no longer kept)."""
        index = self._waiting_index
        if index is not None and not index.moved(job_id, state, ts(at) or ""):
            self._waiting_index = None  # back to waiting, its order unknown: read again
        kept = self._kept.get(job_id)
        if kept is None:
            return
        if state in FINAL_STATES:
            self._kept.ended(job_id)
        else:
            kept.job["state"], kept.job["updated_at"] = state, ts(at)

    def job_state(self, job_id: str) -> str:
        """The current state of ``job_id``.

        Raises:
            UnknownJobError: no such job.
        """
        row = self._exec("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJobError(job_id)
        return str(row[0])

    def ever_running(self, job_id: str) -> bool:
        """Whether ``job_id`` was ever ``running`` (a transition to it is recorded)."""
        row = self._exec(
            "SELECT 1 FROM transitions WHERE job_id = ? AND to_state = 'running' LIMIT 1",
            (job_id,),
        ).fetchone()
        return row is not None

    def transitions(self, job_id: str) -> list[TransitionRecord]:
        """Every state change of ``job_id``, in order."""
        rows = self._exec(
            "SELECT * FROM transitions WHERE job_id = ? ORDER BY seq", (job_id,)
        ).fetchall()
        return [
            TransitionRecord(r["job_id"], r["from_state"], r["to_state"], req_dt(r["at"]),
                             r["reason"])
            for r in rows
        ]  # fmt: skip

    def cancel_requested(self, state: str) -> set[str]:
        """Ids of the jobs in ``state`` whose owner asked to cancel them (indexed by state)."""
        rows = self._exec(
            "SELECT job_id FROM jobs WHERE state = ? AND cancel_requested_at IS NOT NULL",
            (state,),
        )
        return {str(r[0]) for r in rows}

    def request_cancel(self, job_id: str, at: datetime, uid: int | None = None) -> None:
        """Record that ``job_id``'s owner (or root: ``uid``, None: its owner) asked to cancel
        it; the service acts on it. The first request is kept. A job that has already ended
        keeps no request (it ended before it was asked)."""
        finals = ", ".join("?" * len(FINAL_STATES))
        updated = self._exec(
            "UPDATE jobs SET cancel_requested_at = coalesce(cancel_requested_at, ?),"
            " cancel_requested_by = CASE WHEN cancel_requested_at IS NULL THEN ?"
            " ELSE cancel_requested_by END"
            f" WHERE job_id = ? AND state NOT IN ({finals})",
            (ts(at), uid, job_id, *sorted(FINAL_STATES)),
        ).rowcount
        if not updated:
            return
        kept = self._kept.get(job_id)
        if kept is not None and kept.job["cancel_requested_at"] is None:
            kept.job["cancel_requested_at"] = ts(at)
        if self._waiting_index is not None:
            self._waiting_index.cancel_requested(job_id, ts(at) or "")

    def cancel_requester(self, job_id: str) -> int | None:
        """The uid that asked to cancel ``job_id`` when it is not the job's owner (root);
        None: its owner asked, or no one did."""
        row = self._exec(
            "SELECT cancel_requested_by FROM jobs WHERE job_id = ? AND cancel_requested_by != uid",
            (job_id,),
        ).fetchone()
        return None if row is None else int(row[0])

    # -- intensity --------------------------------------------------------------------------

    def record_intensity(
        self, zone: str, at: datetime, intensity_g_per_kwh: float, source: str, now: datetime
    ) -> None:
        """Store one intensity sample (idempotent per zone, time and source)."""
        if self._samples.wanted(zone):  # the zone's samples kept from now on (ledger.samples)
            rows = self._exec(
                "SELECT at, intensity_g_per_kwh, source FROM intensity_samples WHERE zone = ?"
                " ORDER BY at",
                (zone,),
            )
            self._samples.load(zone, ((r[0], (req_dt(r[0]), float(r[1]), str(r[2])))
                                      for r in rows))  # fmt: skip
        text = ts(at)
        self._exec(
            "INSERT OR REPLACE INTO intensity_samples VALUES (?, ?, ?, ?, ?)",
            (zone, text, intensity_g_per_kwh, source, ts(now)),
        )
        assert text is not None
        self._samples.recorded(zone, text, (req_dt(text), float(intensity_g_per_kwh), source))

    # -- rows to records --------------------------------------------------------------------

    def _job(self, row: sqlite3.Row | dict[str, Any]) -> JobRecord:
        return JobRecord(
            job_id=row["job_id"], uid=row["uid"], gid=row["gid"], name=row["name"],
            state=row["state"], priority=row["priority"],
            submitted_at=req_dt(row["submitted_at"]), deadline=dt(row["deadline"]),
            request=self._request(row["spec_json"]), source=row["source"],
            updated_at=req_dt(row["updated_at"]),
            cancel_requested_at=dt(row["cancel_requested_at"]),
        )  # fmt: skip

    def _request(self, spec_json: str) -> JobRequest:
        """The request stored as ``spec_json``, parsed once (the cache is emptied when it
        reaches :data:`_REQUESTS_KEPT` entries)."""
        requests = self._requests
        request = None if requests is None else requests.get(spec_json)
        if request is None:
            request = JobRequest.from_json(json.loads(spec_json))
            self._remember_request(spec_json, request)
        return request

    def _remember_request(self, spec_json: str, request: JobRequest) -> None:
        """Keep ``request`` as the parsed ``spec_json`` (equal to what parsing it gives)."""
        if self._requests is None or len(self._requests) >= _REQUESTS_KEPT:
            self._requests = {}
        self._requests[spec_json] = request


_JOB_COLUMNS = ("job_id", "uid", "gid", "name", "priority", "submitted_at", "deadline",
                "spec_json", "source", "updated_at")  # fmt: skip
_UNSET_JOB_COLUMNS = {"state": "queued", "cancel_requested_at": None}


_REQUESTS_KEPT = 20_000
