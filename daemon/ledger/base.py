"""The ledger's connection: opening, transactions (its migrations: :mod:`daemon.ledger.migrations`;
its errors: :mod:`daemon.ledger.errors`; how values are stored in its columns:
:mod:`daemon.ledger.values`)."""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar

from daemon.ledger.errors import LedgerError, LockWaitStoppedError
from daemon.ledger.migrations import migrate, refuse_foreign
from daemon.ledger.readonly import FileState, changed_under, file_state, missing_ledger, not_yours
from daemon.ledger.schema import SCHEMA_VERSION

__all__ = ["BUSY_TIMEOUT_S", "Connection"]


# How long a statement waits for another process's lock ("database is locked" after it).
BUSY_TIMEOUT_S: Final = 10.0
# With a stop to watch, SQLite waits this long at a time; between two, the stop is looked at.
_BUSY_SLICE_MS: Final = 100

_T = TypeVar("_T")


def _busy(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` is SQLITE_BUSY (any extended code): another connection's lock."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


class Connection:
    """One SQLite connection to the ledger file. Open with :meth:`open` (read-write, migrates)
    or :meth:`open_readonly`; close with :meth:`close` or use as a context manager.

    Raises (from every method):
        LedgerError: SQLite failed; the message names the file.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        self._db.row_factory = sqlite3.Row
        # A read-only view of a ledger an older carbond wrote, not migrated yet (the daemon
        # migrates it when it starts): its version, named when a read misses a newer column.
        self._unmigrated_version: int | None = None
        self._stopping: Callable[[], bool] | None = None  # stop_waiting_when's
        # Opened immutable (no daemon ran): the file as it was then (:meth:`_unchanged`).
        self._unlocked_file: FileState | None = None

    def stop_waiting_when(self, stopping: Callable[[], bool]) -> None:
        """From now on a statement that finds another process's lock in its way (a user's
        ``fcntl`` lock on the ``-shm``, an ``sqlite3`` shell's write transaction) waits for
        it up to :data:`BUSY_TIMEOUT_S` as before, but gives up within about 0.1 s of
        ``stopping()`` (:class:`LockWaitStoppedError`, nothing of it written): SQLite sleeps
        in C, where no signal handler runs, so a daemon asked to stop waited on the lock."""
        self._db.execute(f"PRAGMA busy_timeout = {_BUSY_SLICE_MS}")
        self._stopping = stopping

    def _retry_busy(self, exc: sqlite3.Error, attempt: Callable[[], _T]) -> _T:
        """After ``attempt`` failed with ``exc``: ``attempt`` again while another process's
        lock is in its way, up to :data:`BUSY_TIMEOUT_S` in all, unless the stop comes. Only
        a statement outside a transaction (or its ``BEGIN``) is tried again: SQLite undid it.

        Raises:
            sqlite3.Error: ``exc`` or the last attempt's (the caller translates it).
            LedgerError: the lock was held all along (what may hold it: ``carbond doctor``).
            LockWaitStoppedError: the stop came first.
        """
        stopping = self._stopping
        if stopping is None or not _busy(exc) or self._db.in_transaction:
            raise exc
        deadline = time.monotonic() + BUSY_TIMEOUT_S - _BUSY_SLICE_MS / 1000
        while not stopping():
            try:
                return attempt()
            except sqlite3.Error as again:
                if not _busy(again) or self._db.in_transaction:
                    raise
                if time.monotonic() >= deadline:
                    raise LedgerError(
                        f"{self.path}: {again}: another process held a lock on it for "
                        f"{BUSY_TIMEOUT_S:g} s (a lock on {self.path.name}-shm, an sqlite3 "
                        "shell's write transaction: docs/operations.md, \"Who can read the "
                        'ledger")'
                    ) from again
        raise LockWaitStoppedError(
            f"{self.path}: gave up waiting for another process's lock on the ledger: "
            "the daemon is stopping (nothing of this write was made)"
        )

    @classmethod
    def open(cls, path: Path, *, durable: bool = True, private: bool = False) -> Self:
        """Open (creating if needed) and migrate the ledger at ``path``.

        ``durable=False`` (``synchronous=OFF``) is for replay and scratch ledgers only: a
        power cut may then lose the last commits, which the daemon's guarantees rely on.

        ``private=True`` (with ``durable=False``: a replay's own ledger) is for a file no other
        connection opens while this one is open, and that a crash may leave unreadable: the
        rollback journal is kept in memory and the file locked for the connection's life
        (``journal_mode=MEMORY``, ``locking_mode=EXCLUSIVE``), so a commit writes each changed
        page once, with no write-ahead log to copy back and no lock calls.
        """
        if private and durable:
            raise ValueError("a private ledger is a scratch ledger: open it with durable=False")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                path, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False
            )
            if private:
                db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute(f"PRAGMA journal_mode={'MEMORY' if private else 'WAL'}")
            db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
            db.execute("PRAGMA foreign_keys=ON")
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(f"{path}: cannot open the ledger: {exc}") from exc
        ledger = cls(path, db)
        migrate(db, path)
        return ledger

    @classmethod
    def open_readonly(cls, path: Path) -> Self:
        """Open an existing ledger for reading (the CLI's view)."""
        if not path.is_file():
            raise LedgerError(missing_ledger(path))
        if not os.access(path, os.R_OK):
            raise LedgerError(not_yours(path))
        try:
            # With no daemon running, the WAL is checkpointed and removed; a reader that may
            # not create ``-shm`` (a user reading root's ledger) then opens it as immutable:
            # without locks, so a daemon started meanwhile may checkpoint into the file under
            # its reads. Its state then (taken first) tells that apart (:meth:`_unchanged`).
            unlocked = None if path.with_name(path.name + "-wal").exists() else file_state(path)
            flags = "mode=ro" if unlocked is None else "mode=ro&immutable=1"
            db = sqlite3.connect(f"file:{path}?{flags}", uri=True, isolation_level=None)
            db.execute("PRAGMA query_only=ON")
            db.execute("SELECT 1 FROM jobs LIMIT 1")
            done = dict(db.execute("SELECT version, description FROM schema_migrations"))
        except sqlite3.Error as exc:
            raise LedgerError(f"{path}: cannot read the ledger: {exc}") from exc
        refuse_foreign(path, done)
        version = max(done, default=None)
        ledger = cls(path, db)
        ledger._unlocked_file = unlocked
        if version is not None and version < SCHEMA_VERSION:
            ledger._unmigrated_version = version
        ledger._unchanged()
        return ledger

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                self._unchanged()  # what the block read last may have spanned a checkpoint
        finally:
            self.close()

    def _unchanged(self) -> None:
        """For a view opened immutable (no daemon ran then): raise if a daemon has written
        the file since (:func:`daemon.ledger.readonly.changed_under`).

        Raises:
            LedgerError: it did; naming the file and what to do (run the command again).
        """
        if self._unlocked_file is not None:
            problem = changed_under(self.path, self._unlocked_file)
            if problem is not None:
                raise LedgerError(problem)

    # -- plumbing ---------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The highest applied migration."""
        row = self._db.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back on any exception. Not re-entrant."""
        try:
            self._begin_immediate()
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot begin a transaction: {exc}") from exc
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            self._rolled_back()
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            # A COMMIT that fails (disk full, I/O error) may leave the transaction open; left
            # so, every later BEGIN would fail until a restart. Roll it back: the caller's
            # changes are lost as a whole, as for any failed step.
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            self._rolled_back()
            raise LedgerError(f"{self.path}: commit failed: {exc}") from exc

    def _begin_immediate(self) -> None:
        """``BEGIN IMMEDIATE``, waiting for another process's write lock (:meth:`_retry_busy`)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._retry_busy(exc, functools.partial(self._db.execute, "BEGIN IMMEDIATE"))

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads that see one state of the ledger (a read transaction: in WAL mode the writes
        the daemon commits meanwhile are not seen until it ends), e.g. a report that reads
        the same outcomes twice; inside the caller's own transaction, that one. Its own is
        read-only (``PRAGMA query_only``): a write in it, which would get no wait on another
        process's lock (:meth:`_retry_busy`), fails, nothing of it made (until 2026-12-07
        nothing enforced it)."""
        if self._db.in_transaction:
            yield
            return
        query_only = bool(self._db.execute("PRAGMA query_only").fetchone()[0])  # a view's: ON
        self._db.execute("PRAGMA query_only = ON")
        try:
            self._exec("BEGIN DEFERRED")
            try:
                yield
            finally:
                self._db.execute("COMMIT")
        except LedgerError as exc:
            if query_only or getattr(exc.__cause__, "sqlite_errorname", "") != "SQLITE_READONLY":
                raise
            raise LedgerError(f"{exc} (a write inside Ledger.snapshot(), which is read-only: "
                              "write in Ledger.transaction())") from exc.__cause__  # fmt: skip
        finally:
            if not query_only:
                self._db.execute("PRAGMA query_only = OFF")

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested step inside :meth:`transaction`: on an exception only this step's writes
        are undone (the exception propagates)."""
        self._exec("SAVEPOINT step")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK TO step")
            self._db.execute("RELEASE step")
            self._rolled_back()
            raise
        self._exec("RELEASE step")

    def _rolled_back(self) -> None:
        """Called after a rollback: subclasses drop what they kept of uncommitted writes."""

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            cursor = self._db.execute(sql, params)
        except sqlite3.Error as first:
            try:
                cursor = self._retry_busy(first, functools.partial(self._db.execute, sql, params))
            except sqlite3.Error as exc:
                self._unchanged()  # "malformed": said as what it is
                raise LedgerError(f"{self.path}: {exc}{self._unmigrated(exc)}") from exc
        if self._unlocked_file is not None:
            self._unchanged()
        return cursor

    def _iterate(self, cursor: sqlite3.Cursor) -> Iterator[Any]:
        """``cursor``'s rows, read one at a time as they are iterated. ``cursor`` comes from
        :meth:`_exec`, whose first step began its read (any wait on another process's lock
        is there, retried as any statement's): the later steps read that snapshot under the
        lock it took, so they never find one in their way and need no retry, in a
        transaction or not. (A view opened immutable takes no lock: :meth:`_unchanged`.)

        Raises:
            LedgerError: SQLite failed while stepping.
        """
        try:
            # Not ``yield from``: it closes the cursor when the generator is dropped early
            # (a reader of ``export TABLE -`` gone), after the ledger closed: an error then.
            for row in cursor:  # noqa: UP028 (see above)
                yield row
        except sqlite3.Error as exc:
            self._unchanged()  # "malformed": said as what it is
            raise LedgerError(f"{self.path}: {exc}") from exc
        self._unchanged()

    def _exec_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """``sql`` for each row, all or none. Inside the caller's :meth:`transaction` (which
        holds the write lock: no statement in it waits on another's) as they come; outside
        one, in a transaction of their own, whose ``BEGIN IMMEDIATE`` waits on another
        process's lock as :meth:`_exec` does (``executemany`` alone is never tried again when
        busy: it would have written the rows before the busy one, a commit each).

        Raises:
            LedgerError: SQLite failed; outside a transaction, nothing was written.
            LockWaitStoppedError: the stop came while waiting for the lock (nothing written).
        """
        if not self._db.in_transaction:
            with self.transaction():
                self._exec_many(sql, rows)
            return
        try:
            self._db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: {exc}{self._unmigrated(exc)}") from exc

    def _unmigrated(self, exc: sqlite3.Error) -> str:
        """Why a read of a ledger an older carbond wrote misses a table or column, and what
        to do (empty for other errors)."""
        version = self._unmigrated_version
        if version is None or not str(exc).startswith("no such"):
            return ""
        return (
            f" (its schema is version {version}, older than this carbond's {SCHEMA_VERSION}: "
            "the daemon migrates it when it starts; restart it after upgrading carbond)"
        )
