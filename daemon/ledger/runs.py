"""The ledger's runs and outcomes: a launch recorded before it happens, its executor's handle,
and how it ended (with its job's outcome row: :mod:`daemon.ledger.outcomes`).

A run row is written ahead of its launch (token NULL until the executor answers), in the
transaction that moves its job to ``running``, and ended in the transaction that moves its job
to a final state, with the job's outcome row. A round's launches and a poll's ends are written
in batches, each table's rows in one statement (:mod:`daemon.ledger.run_batches`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daemon.ledger.base import Connection
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

if TYPE_CHECKING:
    from daemon.ledger.kept import KeptRows

__all__ = ["Runs"]


class Runs(Connection):
    """Runs (a mixin of :class:`daemon.ledger.Ledger`; outcome rows: :class:`Outcomes`)."""

    # The records active_runs() returned last, by their row's values; the list itself, as of
    # SQLite's data_version and this connection's writes of runs and job states then.
    _active: dict[tuple[Any, ...], RunRecord] | None = None
    _active_runs: tuple[RunRecord, ...] = ()
    _active_as_of: tuple[int, int] | None = None
    _run_writes = 0  # this connection's writes that may change what active_runs() returns

    if TYPE_CHECKING:  # the Ledger's (daemon.ledger.store)

        @property
        def _kept(self) -> KeptRows: ...

        def job(self, job_id: str) -> JobRecord: ...

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
