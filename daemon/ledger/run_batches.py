"""A round's launches and a poll's ends, written in batches: each table's rows in one
statement, inside the caller's transaction, the same rows as the one-by-one calls of
:class:`~daemon.ledger.runs.Runs` would write. :meth:`RunBatches.start_runs` (the ``running``
moves and run rows, before the executors start anything), :meth:`RunBatches.set_runs_started`
(the executors' handles) and :meth:`RunBatches.finish_runs` (the ends, the final moves and the
outcome rows). A batch that a job moved by another connection would make wrong is undone to
its savepoint and written one by one instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daemon.ledger.errors import LedgerError
from daemon.ledger.kept import integer
from daemon.ledger.run_rows import kept_run_row, list_json
from daemon.ledger.runs import Runs
from daemon.ledger.values import ts
from daemon.states import FINAL_STATES, TRANSITIONS
from policies.fast_init import fast_init

__all__ = ["RunBatches", "RunEnd", "RunStart"]


@fast_init
@dataclass(frozen=True, slots=True)
class RunStart:
    """A launch about to happen, as :meth:`RunBatches.start_runs` records it: its job's move from
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
    """How one run ended, as :meth:`RunBatches.finish_runs` records it: the run's end (``reason``:
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


class RunBatches(Runs):
    """Runs written in batches (a mixin of :class:`daemon.ledger.Ledger`)."""

    if TYPE_CHECKING:  # the Ledger's (daemon.ledger.store) and its Outcomes' (.outcomes)

        def _kept_state(self, job_id: str, state: str, at: datetime) -> None: ...

        def transition(
            self, job_id: str, new_state: str, at: datetime, reason: str, *, seen: str | None = None
        ) -> str: ...

        def record_outcome(self, job_id: str, at: datetime, **columns: Any) -> None: ...

        def _record_outcomes(self, ends: Sequence[RunEnd], when: str | None) -> None: ...

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
