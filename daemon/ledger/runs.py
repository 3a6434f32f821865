"""The ledger's runs and outcomes: a launch recorded before it happens, its executor's handle,
and how it ended (with its job's outcome row: :mod:`daemon.ledger.outcomes`).

A run row is written ahead of its launch (token NULL until the executor answers), in the
transaction that moves its job to ``running``, and ended in the transaction that moves its job
to a final state, with the job's outcome row. A round's launches and a poll's ends are written
in batches, each table's rows in one statement: :meth:`Runs.start_runs` (the ``running``
moves and run rows), :meth:`Runs.set_runs_started` (the executors' handles) and
:meth:`Runs.finish_runs` (the ends).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daemon.ledger.base import Connection
from daemon.ledger.errors import LedgerError
from daemon.ledger.kept import integer
from daemon.ledger.records import JobRecord, RunRecord, StartedRun
from daemon.ledger.run_rows import (
    ACTIVE_RUN_COLUMNS,
    active_run_record,
    kept_run_row,
    list_json,
    run_record,
)
from daemon.ledger.values import dt, json_tuple, ts
from daemon.states import FINAL_STATES, TRANSITIONS
from policies.fast_init import fast_init

if TYPE_CHECKING:
    from daemon.ledger.kept import KeptRows

__all__ = ["RunEnd", "RunStart", "Runs", "run_record"]


@fast_init
@dataclass(frozen=True, slots=True)
class RunStart:
    """A launch about to happen, as :meth:`Runs.start_runs` records it: its job's move from
    ``seen`` (the state the caller read) to ``running`` and why (``reason``: the
    transition's), and its run row (token unknown). ``held``: the job has a run its executor
    holds (Slurm), which this one replaces, keeping ``token`` (None: none)."""

    job_id: str
    seen: str
    reason: str
    executor: str
    device_ids: tuple[str, ...]
    gpu_indices: tuple[int, ...]
    expected_duration_s: float
    held: bool = False
    token: str | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class RunEnd:
    """How one run ended, as :meth:`Runs.finish_runs` records it: the run's end (``reason``:
    the run row's), its job's final ``state`` and why (``state_reason``: the transition's),
    and the ``outcomes`` columns (empty: no outcome row)."""

    job_id: str
    finished_at: datetime
    exit_code: int | None
    signal: int | None
    reason: str
    state: str
    state_reason: str
    columns: Mapping[str, Any]


class Runs(Connection):
    """Runs (a mixin of :class:`daemon.ledger.Ledger`; outcome rows: :class:`Outcomes`)."""

    # The records active_runs() returned last, by their row's values; the list itself, as of
    # SQLite's data_version and this connection's writes of runs and job states then.
    _active: dict[tuple[Any, ...], RunRecord] | None = None
    _active_runs: tuple[RunRecord, ...] = ()
    _active_as_of: tuple[int, int] | None = None
    _run_writes = 0  # this connection's writes that may change what active_runs() returns

    if TYPE_CHECKING:  # the Ledger's (daemon.ledger.store) and its Outcomes' (.outcomes)

        @property
        def _kept(self) -> KeptRows: ...

        def _kept_state(self, job_id: str, state: str, at: datetime) -> None: ...

        def job(self, job_id: str) -> JobRecord: ...

        def transition(
            self, job_id: str, new_state: str, at: datetime, reason: str, *, seen: str | None = None
        ) -> str: ...

        def record_outcome(self, job_id: str, at: datetime, **columns: Any) -> None: ...

        def _record_outcomes(self, ends: Sequence[RunEnd], when: str | None) -> None: ...

    def runs(self, states: Sequence[str], *, owners: bool = False) -> dict[str, RunRecord]:
        """The runs of the jobs in ``states``, by job id (``owners``: each with its job's
        ``uid``)."""
        rows = self._exec(
            "SELECT runs.*, jobs.uid AS uid FROM runs JOIN jobs USING (job_id)"
            f" WHERE jobs.state IN ({','.join('?' * len(states))})",
            list(states),
        )
        return {row["job_id"]: run_record(row, uid=row["uid"] if owners else None) for row in rows}

    def started_runs(self, states: Sequence[str]) -> list[StartedRun]:
        """The runs of the jobs in ``states`` whose latest decision is ``start``, with that
        decision's expectations, in no particular order: what :meth:`runs` and
        :meth:`Decisions.latest_decisions` give of them, in one query of those columns only
        (each job's latest decision found through its index, not by grouping every
        decision): a replay reads every job's back at its end."""
        cursor = self._exec(
            "SELECT runs.job_id, runs.device_ids_json, runs.expected_duration_s,"
            " runs.launched_at, runs.started_at, runs.finished_at, d.region, d.gpu, d.reason,"
            " d.expected_energy_j, d.expected_intensity_g_per_kwh, d.expected_operational_g,"
            " d.expected_embodied_g FROM runs JOIN jobs USING (job_id) JOIN decisions AS d"
            " ON d.seq = (SELECT max(seq) FROM decisions WHERE decisions.job_id = runs.job_id)"
            f" WHERE jobs.state IN ({','.join('?' * len(states))}) AND d.action = 'start'",
            list(states),
        )
        cursor.row_factory = None  # plain tuples, unpacked below
        rows = cursor.fetchall()
        fromiso = datetime.fromisoformat
        return [
            StartedRun(job_id, json_tuple(devices), expected_s, fromiso(launched),
                       None if started is None else fromiso(started),
                       None if finished is None else fromiso(finished), *decided)
            for job_id, devices, expected_s, launched, started, finished, *decided in rows
        ]  # fmt: skip

    # -- runs -------------------------------------------------------------------------------

    def add_run(
        self,
        job_id: str,
        executor: str,
        device_ids: Sequence[str],
        gpu_indices: Sequence[int],
        expected_duration_s: float,
        at: datetime,
    ) -> None:
        """Record a launch about to happen (token still unknown)."""
        self._run_writes += 1
        devices, indices, when = list_json(device_ids), list_json(gpu_indices), ts(at)
        self._exec(
            "INSERT INTO runs (job_id, executor, device_ids_json, gpu_indices_json,"
            " expected_duration_s, launched_at) VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, executor, devices, indices, expected_duration_s, when),
        )
        kept = self._kept.get(job_id)
        if kept is not None:
            kept.run = kept_run_row(job_id, executor, devices, indices, expected_duration_s,
                                     when)  # fmt: skip

    def start_runs(self, starts: Sequence[RunStart], at: datetime) -> None:
        """Record the launches of ``starts`` about to happen, in order, inside the caller's
        transaction: for each, ``transition(job_id, "running", at, reason, seen=seen)``, the
        held run's :meth:`drop_run`, :meth:`add_run` at ``at`` and the held token's
        :meth:`set_run_token`; the same rows, each table's in one statement.

        A batch with a held run, a ``seen`` state the state machine does not let go to
        ``running``, or a job no longer in its ``seen`` state (another connection moved it) is
        recorded one by one, as those calls would (which raise where the move is not allowed).

        Raises:
            InvalidTransitionError: a job cannot move to ``running``.
        """
        if not starts:
            return
        if any(s.held or "running" not in TRANSITIONS.get(s.seen, ()) for s in starts):
            self._start_one_by_one(starts, at)
            return
        self._run_writes += 1  # counted before writing: a failed write may have changed it
        when = ts(at)
        if not self._moved_all(
            "start_runs",
            "UPDATE jobs SET state = 'running', updated_at = ? WHERE job_id = ? AND state = ?",
            [(when, s.job_id, s.seen) for s in starts],
        ):
            self._start_one_by_one(starts, at)
            return
        self._exec_many(
            "INSERT INTO transitions (job_id, from_state, to_state, at, reason)"
            " VALUES (?, ?, 'running', ?, ?)",
            [(s.job_id, s.seen, when, s.reason) for s in starts],
        )
        rows = [(s, list_json(s.device_ids), list_json(s.gpu_indices)) for s in starts]
        self._exec_many(
            "INSERT INTO runs (job_id, executor, device_ids_json, gpu_indices_json,"
            " expected_duration_s, launched_at) VALUES (?, ?, ?, ?, ?, ?)",
            [(s.job_id, s.executor, devices, indices, s.expected_duration_s, when)
             for s, devices, indices in rows],
        )  # fmt: skip
        kept = self._kept
        for s, devices, indices in rows:
            self._kept_state(s.job_id, "running", at)
            job = kept.get(s.job_id)
            if job is not None:
                job.run = kept_run_row(s.job_id, s.executor, devices, indices,
                                        s.expected_duration_s, when)  # fmt: skip

    def _moved_all(self, name: str, sql: str, rows: Sequence[tuple[Any, ...]]) -> bool:
        """The guarded ``jobs`` update ``sql`` (``... AND state = ...``) for every row, inside
        savepoint ``name`` of the caller's transaction: True when every job moved; else the
        savepoint is undone (a job was moved by another connection) and False.

        Raises:
            LedgerError: the statement failed (the caller's transaction rolls it all back).
        """
        self._exec(f"SAVEPOINT {name}")
        try:
            moved = self._db.executemany(sql, rows).rowcount
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: {exc}") from exc
        if moved != len(rows):
            self._undo(name)
            return False
        self._exec(f"RELEASE {name}")
        return True

    def _start_one_by_one(self, starts: Sequence[RunStart], at: datetime) -> None:
        """:meth:`start_runs` as one call per transition and run."""
        for s in starts:
            self.transition(s.job_id, "running", at, s.reason, seen=s.seen)
            if s.held:
                self.drop_run(s.job_id)
            self.add_run(s.job_id, s.executor, s.device_ids, s.gpu_indices,
                         s.expected_duration_s, at)  # fmt: skip
            if s.token:
                self.set_run_token(s.job_id, s.token)

    def set_runs_started(self, started: Sequence[tuple[str, str, datetime]]) -> None:
        """:meth:`set_run_started` for each ``(job_id, token, started_at)``, in order (one
        statement for them all: the caller holds the transaction)."""
        if not started:
            return
        self._run_writes += 1
        rows = [(token, ts(at), job_id) for job_id, token, at in started]
        self._exec_many("UPDATE runs SET token = ?, started_at = ? WHERE job_id = ?", rows)
        for token, at, job_id in rows:
            self._kept_run(job_id, token=token, started_at=at)

    def set_run_started(self, job_id: str, token: str, started_at: datetime) -> None:
        """Record the executor's handle of a launched job."""
        self._run_writes += 1
        self._exec(
            "UPDATE runs SET token = ?, started_at = ? WHERE job_id = ?",
            (token, ts(started_at), job_id),
        )
        self._kept_run(job_id, token=token, started_at=ts(started_at))

    def set_run_token(self, job_id: str, token: str) -> None:
        """Record the executor's handle of a job it holds before its start (not started)."""
        self._run_writes += 1
        self._exec("UPDATE runs SET token = ? WHERE job_id = ?", (token, job_id))
        self._kept_run(job_id, token=token)

    def set_cancel_sent(self, job_id: str, at: datetime) -> None:
        """Record that the owner's cancel was sent to ``job_id``'s run at ``at`` (the first
        send is kept: a restarted daemon sends it again)."""
        self._run_writes += 1
        self._exec(
            "UPDATE runs SET cancel_sent_at = coalesce(cancel_sent_at, ?) WHERE job_id = ?",
            (ts(at), job_id),
        )

    def cancel_sent_at(self, job_id: str) -> datetime | None:
        """When the owner's cancel was first sent to ``job_id``'s run (None: never, or no run)."""
        row = self._exec("SELECT cancel_sent_at FROM runs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else dt(row[0])

    def finish_run(
        self,
        job_id: str,
        finished_at: datetime,
        exit_code: int | None,
        signal: int | None,
        reason: str,
    ) -> None:
        """Record how a run ended."""
        self._run_writes += 1
        self._exec(
            "UPDATE runs SET finished_at = ?, exit_code = ?, signal = ?, reason = ?"
            " WHERE job_id = ?",
            (ts(finished_at), exit_code, signal, reason, job_id),
        )
        self._kept_run(job_id, finished_at=ts(finished_at), exit_code=integer(exit_code),
                       signal=integer(signal), reason=reason)  # fmt: skip

    def finish_runs(self, ends: Sequence[RunEnd], at: datetime) -> None:
        """Record how the runs of ``ends`` ended, in order, inside the caller's transaction:
        for each, :meth:`finish_run`, ``transition(job_id, state, at, state_reason,
        seen="running")`` and, with columns, :meth:`record_outcome` at ``at``; the same rows,
        each table's in one statement.

        Every job must be ``running``; if one is not (another connection moved it), those
        statements are undone and the ends are recorded one by one, as those calls would
        (which raise where the move is not allowed).

        Raises:
            InvalidTransitionError: a job cannot move to its final state.
        """
        if not ends:
            return
        if any(e.state not in TRANSITIONS["running"] for e in ends):
            self._finish_one_by_one(ends, at)  # raises at the move the state machine forbids
            return
        self._run_writes += 1  # counted before writing: a failed write may have changed it
        when = ts(at)
        if not self._moved_all(
            "finish_runs",
            "UPDATE jobs SET state = ?, updated_at = ? WHERE job_id = ? AND state = 'running'",
            [(e.state, when, e.job_id) for e in ends],
        ):
            self._finish_one_by_one(ends, at)
            return
        finished = [(ts(e.finished_at), e) for e in ends]
        self._exec_many(
            "UPDATE runs SET finished_at = ?, exit_code = ?, signal = ?, reason = ?"
            " WHERE job_id = ?",
            [(f, e.exit_code, e.signal, e.reason, e.job_id) for f, e in finished],
        )
        self._exec_many(
            "INSERT INTO transitions (job_id, from_state, to_state, at, reason)"
            " VALUES (?, 'running', ?, ?, ?)",
            [(e.job_id, e.state, when, e.state_reason) for e in ends],
        )
        self._record_outcomes([e for e in ends if e.columns], when)
        for f, e in finished:
            if e.state not in FINAL_STATES:  # a final state forgets the kept rows at once
                self._kept_run(e.job_id, finished_at=f, exit_code=integer(e.exit_code),
                               signal=integer(e.signal), reason=e.reason)  # fmt: skip
            self._kept_state(e.job_id, e.state, at)

    def _finish_one_by_one(self, ends: Sequence[RunEnd], at: datetime) -> None:
        """:meth:`finish_runs` as one call per run, transition and outcome."""
        for e in ends:
            self.finish_run(e.job_id, e.finished_at, e.exit_code, e.signal, e.reason)
            self.transition(e.job_id, e.state, at, e.state_reason, seen="running")
            if e.columns:
                self.record_outcome(e.job_id, at, **e.columns)

    def _undo(self, savepoint: str) -> None:
        """Roll back to ``savepoint`` and release it (nothing written after it was kept)."""
        self._exec(f"ROLLBACK TO {savepoint}")
        self._exec(f"RELEASE {savepoint}")

    def drop_run(self, job_id: str) -> None:
        """Forget a run that never started (so the job can be launched again)."""
        self._run_writes += 1
        self._exec("DELETE FROM runs WHERE job_id = ?", (job_id,))
        kept = self._kept.get(job_id)
        if kept is not None:
            kept.run = None

    def run(self, job_id: str) -> RunRecord | None:
        """The run of ``job_id``, if it was launched."""
        kept = self._kept.get(job_id)
        if kept is not None:
            return None if kept.run is None else run_record(kept.run)
        row = self._exec("SELECT * FROM runs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else run_record(row)

    def ending_job(self, job_id: str) -> tuple[str, datetime | None, datetime | None]:
        """What the ending of ``job_id``'s run reads of its job: ``(state, when its owner
        asked to cancel it, deadline)``, as :meth:`Ledger.job` gives them (from the kept job
        row when there is one: no record built).

        Raises:
            UnknownJobError: no such job.
        """
        kept = self._kept.get(job_id)
        if kept is None:
            job = self.job(job_id)
            return job.state, job.cancel_requested_at, job.deadline
        row = kept.job
        return row["state"], dt(row["cancel_requested_at"]), dt(row["deadline"])

    def _kept_run(self, job_id: str, **columns: Any) -> None:
        """The kept run row of ``job_id`` (if any) with ``columns`` as just written."""
        kept = self._kept.get(job_id)
        if kept is not None and kept.run is not None:
            kept.run.update(columns)

    def active_runs(self) -> list[RunRecord]:
        """Runs of jobs in state ``running``, each with its job's deadline and owner (asked
        several times a round: when neither this connection wrote a run or a job's state since, nor
        another connection committed, the same answer without reading it again)."""
        as_of = (self._exec("PRAGMA data_version").fetchone()[0], self._run_writes)
        if as_of == self._active_as_of:
            return list(self._active_runs)
        cursor = self._exec(
            f"SELECT {ACTIVE_RUN_COLUMNS} FROM runs JOIN jobs USING (job_id)"
            " WHERE jobs.state = 'running' ORDER BY runs.launched_at"
        )
        cursor.row_factory = None  # plain tuples: each run's columns by position
        # Asked several times a round: a row as last time is the same record, not parsed again.
        known, runs, active = self._active or {}, [], {}
        for values in cursor:
            record = known.get(values)
            if record is None:
                record = active_run_record(values)
            active[values] = record
            runs.append(record)
        self._active = active
        self._active_runs, self._active_as_of = tuple(runs), as_of
        return runs
