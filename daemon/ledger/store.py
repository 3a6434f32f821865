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
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from daemon.errors import DaemonError
from daemon.ledger.records import (
    DecisionRecord,
    JobRecord,
    QueueFileRecord,
    RunRecord,
    TransitionRecord,
)
from daemon.ledger.schema import MIGRATIONS, SCHEMA_VERSION
from daemon.queue_line import JobRequest
from daemon.states import check_transition
from policies import Decision

__all__ = ["Ledger", "LedgerError", "UnknownJobError"]


class LedgerError(DaemonError):
    """The ledger cannot be opened, migrated or written (names the file)."""


class UnknownJobError(LedgerError, LookupError):
    """No job has that id."""


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _req_dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


class Ledger:
    """The daemon's database. Open with :meth:`open` (read-write, migrates) or
    :meth:`open_readonly`; close with :meth:`close` or use as a context manager.

    Raises (from every method):
        LedgerError: SQLite failed; the message names the file.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        self._db.row_factory = sqlite3.Row

    @classmethod
    def open(cls, path: Path, *, durable: bool = True) -> Ledger:
        """Open (creating if needed) and migrate the ledger at ``path``.

        ``durable=False`` (``synchronous=OFF``) is for replay and scratch ledgers only: a
        power cut may then lose the last commits, which the daemon's guarantees rely on.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, timeout=10.0, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
            db.execute("PRAGMA foreign_keys=ON")
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(f"{path}: cannot open the ledger: {exc}") from exc
        ledger = cls(path, db)
        ledger._migrate()
        return ledger

    @classmethod
    def open_readonly(cls, path: Path) -> Ledger:
        """Open an existing ledger for reading (the CLI's view)."""
        if not path.is_file():
            raise LedgerError(f"{path}: no ledger (has `carbond run` started with this state_dir?)")
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            db.execute("PRAGMA query_only=ON")
            db.execute("SELECT 1 FROM jobs LIMIT 1")
        except sqlite3.Error as exc:
            raise LedgerError(f"{path}: cannot read the ledger: {exc}") from exc
        return cls(path, db)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        try:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "description TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            done = {r[0] for r in self._db.execute("SELECT version FROM schema_migrations")}
            if done and max(done) > SCHEMA_VERSION:
                raise LedgerError(
                    f"{self.path}: schema version {max(done)} is newer than this carbond "
                    f"({SCHEMA_VERSION}); upgrade carbond"
                )
            for version, description, script in MIGRATIONS:
                if version in done:
                    continue
                self._db.executescript(
                    "BEGIN IMMEDIATE;\n"
                    + script
                    + "\nINSERT INTO schema_migrations VALUES "
                    + f"({version}, {_quote(description)}, strftime('%Y-%m-%dT%H:%M:%SZ'));\n"
                    + f"PRAGMA user_version = {version};\nCOMMIT;"
                )
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise LedgerError(f"{self.path}: migration failed: {exc}") from exc

    def schema_version(self) -> int:
        """The highest applied migration."""
        row = self._db.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back on any exception. Not re-entrant."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot begin a transaction: {exc}") from exc
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: commit failed: {exc}") from exc

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: {exc}") from exc

    # -- jobs -------------------------------------------------------------------------------

    def add_job(self, request: JobRequest, uid: int, gid: int, source: str, now: datetime) -> None:
        """Insert a new ``queued`` job (``request.job_id`` must be set and unused)."""
        assert request.job_id is not None
        self._exec(
            "INSERT INTO jobs (job_id, uid, gid, name, state, priority, submitted_at, deadline,"
            " spec_json, source, updated_at) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
            (request.job_id, uid, gid, request.name, request.priority, _ts(now),
             _ts(request.deadline), json.dumps(request.to_json()), source, _ts(now)),
        )  # fmt: skip
        self._exec(
            "INSERT INTO transitions (job_id, from_state, to_state, at, reason)"
            " VALUES (?, NULL, 'queued', ?, ?)",
            (request.job_id, _ts(now), f"ingested from {source}"),
        )

    def job_owner(self, job_id: str) -> int | None:
        """The uid that submitted ``job_id``, or None when there is no such job."""
        row = self._exec("SELECT uid FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else int(row[0])

    def job(self, job_id: str) -> JobRecord:
        """The job called ``job_id``.

        Raises:
            UnknownJobError: no such job.
        """
        row = self._exec("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJobError(f"unknown job {job_id!r}")
        return _job(row)

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
        return [_job(row) for row in self._exec(sql, params)]

    def counts_by_state(self) -> dict[str, int]:
        """How many jobs are in each state (states without jobs are absent)."""
        rows = self._exec("SELECT state, count(*) FROM jobs GROUP BY state")
        return {str(r[0]): int(r[1]) for r in rows}

    def transition(self, job_id: str, new_state: str, at: datetime, reason: str) -> str:
        """Move ``job_id`` to ``new_state``, recording why; returns the previous state.

        Raises:
            UnknownJobError: no such job.
            InvalidTransitionError: the state machine forbids it.
        """
        current = self.job_state(job_id)
        check_transition(job_id, current, new_state)
        self._exec(
            "UPDATE jobs SET state = ?, updated_at = ? WHERE job_id = ?",
            (new_state, _ts(at), job_id),
        )
        self._exec(
            "INSERT INTO transitions (job_id, from_state, to_state, at, reason)"
            " VALUES (?, ?, ?, ?, ?)",
            (job_id, current, new_state, _ts(at), reason),
        )
        return current

    def job_state(self, job_id: str) -> str:
        """The current state of ``job_id``.

        Raises:
            UnknownJobError: no such job.
        """
        row = self._exec("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJobError(f"unknown job {job_id!r}")
        return str(row[0])

    def transitions(self, job_id: str) -> list[TransitionRecord]:
        """Every state change of ``job_id``, in order."""
        rows = self._exec(
            "SELECT * FROM transitions WHERE job_id = ? ORDER BY seq", (job_id,)
        ).fetchall()
        return [
            TransitionRecord(r["job_id"], r["from_state"], r["to_state"], _req_dt(r["at"]),
                             r["reason"])
            for r in rows
        ]  # fmt: skip

    def request_cancel(self, job_id: str, at: datetime) -> None:
        """Record that ``job_id``'s owner asked to cancel it; the service acts on it."""
        self._exec(
            "UPDATE jobs SET cancel_requested_at = coalesce(cancel_requested_at, ?)"
            " WHERE job_id = ?",
            (_ts(at), job_id),
        )

    # -- decisions --------------------------------------------------------------------------

    def record_decision(self, decision: Decision, at: datetime) -> None:
        """Store ``decision`` with its alternatives and run-now counterfactual."""
        chosen, run_now = decision.chosen, decision.run_now
        self._exec(
            "INSERT INTO decisions (job_id, at, policy, action, reason, region, gpu,"
            " device_ids_json, planned_start, expected_duration_s, expected_energy_j,"
            " expected_intensity_g_per_kwh, expected_operational_g, expected_embodied_g,"
            " expected_total_g, run_now_total_g, run_now_json, alternatives_json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                decision.job_id, _ts(at), decision.policy, decision.action, decision.reason,
                chosen.region if chosen else None, chosen.gpu if chosen else None,
                json.dumps(list(chosen.device_ids)) if chosen else None,
                _ts(chosen.start) if chosen else None,
                chosen.duration_s if chosen else None, chosen.energy_j if chosen else None,
                chosen.intensity_g_per_kwh if chosen else None,
                chosen.operational_g if chosen else None, chosen.embodied_g if chosen else None,
                chosen.total_g if chosen else None, run_now.total_g if run_now else None,
                json.dumps(alternative_json(run_now)) if run_now else None,
                json.dumps([alternative_json(a) for a in decision.alternatives]),
            ),
        )  # fmt: skip

    def latest_decision(self, job_id: str) -> DecisionRecord | None:
        """The most recent decision about ``job_id``, if any."""
        row = self._exec(
            "SELECT * FROM decisions WHERE job_id = ? ORDER BY seq DESC LIMIT 1", (job_id,)
        ).fetchone()
        if row is None:
            return None
        return DecisionRecord(
            job_id=row["job_id"], at=_req_dt(row["at"]), policy=row["policy"],
            action=row["action"], reason=row["reason"], region=row["region"], gpu=row["gpu"],
            device_ids=tuple(json.loads(row["device_ids_json"] or "[]")),
            planned_start=_dt(row["planned_start"]),
            expected_duration_s=row["expected_duration_s"],
            expected_energy_j=row["expected_energy_j"],
            expected_intensity_g_per_kwh=row["expected_intensity_g_per_kwh"],
            expected_operational_g=row["expected_operational_g"],
            expected_embodied_g=row["expected_embodied_g"],
            expected_total_g=row["expected_total_g"], run_now_total_g=row["run_now_total_g"],
            alternatives=tuple(json.loads(row["alternatives_json"])),
        )  # fmt: skip

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
        self._exec(
            "INSERT INTO runs (job_id, executor, device_ids_json, gpu_indices_json,"
            " expected_duration_s, launched_at) VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, executor, json.dumps(list(device_ids)), json.dumps(list(gpu_indices)),
             expected_duration_s, _ts(at)),
        )  # fmt: skip

    def set_run_started(self, job_id: str, token: str, started_at: datetime) -> None:
        """Record the executor's handle of a launched job."""
        self._exec(
            "UPDATE runs SET token = ?, started_at = ? WHERE job_id = ?",
            (token, _ts(started_at), job_id),
        )

    def finish_run(
        self,
        job_id: str,
        finished_at: datetime,
        exit_code: int | None,
        signal: int | None,
        reason: str,
    ) -> None:
        """Record how a run ended."""
        self._exec(
            "UPDATE runs SET finished_at = ?, exit_code = ?, signal = ?, reason = ?"
            " WHERE job_id = ?",
            (_ts(finished_at), exit_code, signal, reason, job_id),
        )

    def drop_run(self, job_id: str) -> None:
        """Forget a run that never started (so the job can be launched again)."""
        self._exec("DELETE FROM runs WHERE job_id = ?", (job_id,))

    def run(self, job_id: str) -> RunRecord | None:
        """The run of ``job_id``, if it was launched."""
        row = self._exec("SELECT * FROM runs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else _run(row)

    def active_runs(self) -> list[RunRecord]:
        """Runs of jobs in state ``running``."""
        rows = self._exec(
            "SELECT runs.* FROM runs JOIN jobs USING (job_id) WHERE jobs.state = 'running'"
            " ORDER BY runs.launched_at"
        )
        return [_run(row) for row in rows]

    # -- outcomes and intensity -------------------------------------------------------------

    def record_outcome(self, job_id: str, at: datetime, **columns: Any) -> None:
        """Insert or replace the outcome row of ``job_id`` (columns of the ``outcomes`` table)."""
        names = ["job_id", "recorded_at", *columns]
        self._exec(
            f"INSERT OR REPLACE INTO outcomes ({', '.join(names)})"
            f" VALUES ({', '.join('?' * len(names))})",
            (job_id, _ts(at), *columns.values()),
        )

    def outcome(self, job_id: str) -> dict[str, Any] | None:
        """The outcome row of ``job_id`` as a dict, if recorded."""
        row = self._exec("SELECT * FROM outcomes WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else dict(row)

    def record_intensity(
        self, zone: str, at: datetime, intensity_g_per_kwh: float, source: str, now: datetime
    ) -> None:
        """Store one intensity sample (idempotent per zone, time and source)."""
        self._exec(
            "INSERT OR REPLACE INTO intensity_samples VALUES (?, ?, ?, ?, ?)",
            (zone, _ts(at), intensity_g_per_kwh, source, _ts(now)),
        )

    # -- queue offsets ----------------------------------------------------------------------

    def queue_files(self) -> dict[str, QueueFileRecord]:
        """Ingestion progress of every queue file, by path relative to the state dir."""
        rows = self._exec("SELECT * FROM queue_files")
        return {
            r["path"]: QueueFileRecord(r["path"], r["inode"], r["byte_offset"], r["line_no"],
                                       _dt(r["retired_at"]))
            for r in rows
        }  # fmt: skip

    def set_queue_file(
        self,
        path: str,
        inode: int | None,
        byte_offset: int,
        line_no: int,
        retired_at: datetime | None = None,
    ) -> None:
        """Record ingestion progress of ``path`` (call inside the ingest transaction)."""
        self._exec(
            "INSERT OR REPLACE INTO queue_files VALUES (?, ?, ?, ?, ?)",
            (path, inode, byte_offset, line_no, _ts(retired_at)),
        )

    def forget_queue_file(self, path: str) -> None:
        """Drop the progress row of a deleted retired file."""
        self._exec("DELETE FROM queue_files WHERE path = ?", (path,))

    def compactions(self) -> list[dict[str, Any]]:
        """Compactions started but not finished (crash recovery)."""
        return [dict(r) for r in self._exec("SELECT * FROM compactions")]

    def begin_compaction(
        self, src: str, dst: str, inode: int, byte_offset: int, line_no: int, at: datetime
    ) -> None:
        """Record the intent to rename ``src`` to ``dst`` (before renaming)."""
        self._exec(
            "INSERT OR REPLACE INTO compactions VALUES (?, ?, ?, ?, ?, ?)",
            (src, dst, inode, byte_offset, line_no, _ts(at)),
        )

    def end_compaction(self, src: str) -> None:
        """Forget a finished or abandoned compaction."""
        self._exec("DELETE FROM compactions WHERE src = ?", (src,))

    # -- export -----------------------------------------------------------------------------

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of ``table`` as dicts (for CSV/JSON export).

        Raises:
            LedgerError: not a ledger table.
        """
        if table not in EXPORTABLE:
            raise LedgerError(f"cannot export {table!r} (tables: {', '.join(EXPORTABLE)})")
        return [dict(r) for r in self._exec(f"SELECT * FROM {table}")]


EXPORTABLE = ("jobs", "transitions", "decisions", "runs", "outcomes", "intensity_samples")


def alternative_json(alt: Any) -> dict[str, Any]:
    """A :class:`policies.Alternative` as a JSON-safe dict."""
    return {
        "device_ids": list(alt.device_ids),
        "region": alt.region,
        "gpu": alt.gpu,
        "start": alt.start.isoformat(),
        "duration_s": alt.duration_s,
        "energy_j": alt.energy_j,
        "intensity_g_per_kwh": alt.intensity_g_per_kwh,
        "operational_g": alt.operational_g,
        "embodied_g": alt.embodied_g,
        "total_g": alt.total_g,
    }


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _job(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        job_id=row["job_id"], uid=row["uid"], gid=row["gid"], name=row["name"],
        state=row["state"], priority=row["priority"], submitted_at=_req_dt(row["submitted_at"]),
        deadline=_dt(row["deadline"]), request=JobRequest.from_json(json.loads(row["spec_json"])),
        source=row["source"], updated_at=_req_dt(row["updated_at"]),
        cancel_requested_at=_dt(row["cancel_requested_at"]),
    )  # fmt: skip


def _run(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        job_id=row["job_id"], executor=row["executor"], token=row["token"],
        device_ids=tuple(json.loads(row["device_ids_json"])),
        gpu_indices=tuple(json.loads(row["gpu_indices_json"])),
        expected_duration_s=row["expected_duration_s"], launched_at=_req_dt(row["launched_at"]),
        started_at=_dt(row["started_at"]), finished_at=_dt(row["finished_at"]),
        exit_code=row["exit_code"], signal=row["signal"], reason=row["reason"],
    )  # fmt: skip
