"""A consistent copy of the ledger while the daemon writes it (``carbond backup``).

The ledger is SQLite in WAL mode: the latest commits may be only in ``ledger.db-wal``, so a
copy of ``ledger.db`` alone can miss them all. :func:`backup_ledger` copies it with SQLite's
online backup API, in one step (one read transaction: the copy is the ledger as of one commit,
and the daemon's writes go on meanwhile), into a temporary file beside the destination that
is turned into a single self-contained file (``journal_mode=DELETE``: no ``-wal`` belongs to
it), checked (``PRAGMA quick_check``), synced, then renamed over the destination: an earlier
backup there is replaced only by a complete one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from daemon.ledger.errors import LedgerError
from daemon.ledger.readonly import missing_ledger
from daemon.statedir import LEDGER_NAME

__all__ = ["LedgerBackup", "backup_ledger"]


@dataclass(frozen=True, slots=True)
class LedgerBackup:
    """What :func:`backup_ledger` wrote: where, how big (bytes), its schema and jobs."""

    source: Path
    path: Path
    size_bytes: int
    schema_version: int
    jobs: int


def backup_ledger(source: Path, dest: Path) -> LedgerBackup:
    """Copy the ledger at ``source`` to ``dest`` (replaced, if it exists, once the copy is
    whole), consistent while a daemon writes ``source``. ``dest`` is 0600, or 0640 where the
    file it replaces let its group read it (:func:`_backup_mode`).

    Raises:
        LedgerError: no ledger at ``source``, ``dest`` is the ledger itself (or its ``-wal`` or
            ``-shm``) or a directory, SQLite cannot read ``source``, or ``dest`` cannot be
            written (the message names the file).
    """
    if not source.is_file():
        raise LedgerError(missing_ledger(source))
    _refuse_destination(source, dest)
    try:
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as exc:
        raise LedgerError(f"{dest}: cannot write the backup: {exc.strerror or exc}") from exc
    tmp = Path(name)
    try:
        os.close(fd)
        os.chmod(tmp, _backup_mode(dest))
        version, jobs = _copy(source, tmp)
        _fsync(tmp)
        os.replace(tmp, dest)
        _fsync(dest.parent)
    except sqlite3.Error as exc:
        raise LedgerError(f"{source}: cannot back up the ledger to {dest}: {exc}") from exc
    except OSError as exc:
        raise LedgerError(f"{dest}: cannot write the backup: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return LedgerBackup(source, dest, dest.stat().st_size, version, jobs)


def _backup_mode(dest: Path) -> int:
    """A backup's permissions: ``0o600``, plus group read where the file it replaces had it.

    The copy took the replaced file's whole mode (set-user/group-ID and execute bits, which its
    owner may have set, and write or read for others), or the umask's (0644: every user could
    read a copy of the whole ledger). A backup is plain data, only ever read by an admin.
    """
    try:
        replaced = os.stat(dest).st_mode
    except OSError:
        return 0o600
    return 0o600 | (replaced & stat.S_IRGRP)


def _refuse_destination(source: Path, dest: Path) -> None:
    if dest.is_dir():
        raise LedgerError(f"{dest} is a directory: name the backup file ({dest / LEDGER_NAME})")
    live = {os.path.realpath(source.with_name(source.name + end)) for end in ("", "-wal", "-shm")}
    if os.path.realpath(dest) in live:
        raise LedgerError(f"{dest}: that is the ledger itself; back it up to another file")


def _copy(source: Path, tmp: Path) -> tuple[int, int]:
    """The online backup of ``source`` into ``tmp``; its schema version and job count."""
    # query_only: never a write to the live ledger. Not mode=ro: a read-only connection
    # leaves the -wal and -shm it had to create behind when no daemon runs; the last
    # connection to close removes them.
    reader = sqlite3.connect(source, timeout=30.0)
    with contextlib.closing(reader), contextlib.closing(sqlite3.connect(tmp)) as copy:
        reader.execute("PRAGMA query_only=ON")
        reader.backup(copy)  # every page in one step: one snapshot
        copy.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal of its own
        check = copy.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"the copy fails its integrity check: {check}")
        version = copy.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
        jobs = copy.execute("SELECT count(*) FROM jobs").fetchone()[0]
    return int(version or 0), int(jobs)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
