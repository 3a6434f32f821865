"""A private ledger (``[ledger] private = true``): ``ledger.db`` and its ``-wal``/``-shm``
open to the daemon's uid alone.

A user who may read ``ledger.db-shm`` may lock it: a shared ``fcntl`` lock on its byte 120
(SQLite's WAL write lock) makes every write of the daemon fail with "database is locked" for as
long as it is held, and an open read transaction stops every checkpoint. SQLite creates the
``-wal`` and ``-shm`` with the database file's mode, so a database file made 0600 keeps new
users out; a descriptor opened while the files were readable is not closed by a ``chmod``, and
keeps both its locks and its view of every later write. :func:`make_private` therefore moves
the ledger to fresh files, once, when it finds it readable by others: descriptors opened before
then see the old files only, which the daemon no longer uses.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import tempfile
from pathlib import Path

from daemon.ledger.errors import LedgerError

__all__ = ["ledger_files", "make_private", "open_to_others"]

_PRIVATE_MODE = 0o600
_SIDE_FILES = ("-wal", "-shm")


def ledger_files(path: Path) -> list[Path]:
    """``path`` and its ``-wal`` and ``-shm``, whether they exist or not."""
    return [path, *(path.with_name(path.name + suffix) for suffix in _SIDE_FILES)]


def open_to_others(path: Path) -> list[tuple[Path, int]]:
    """The ledger files that exist and that another uid than their owner's may open (a group
    or other permission bit), each with its permission bits."""
    found = []
    for file in ledger_files(path):
        try:
            st = os.lstat(file)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
            found.append((file, stat.S_IMODE(st.st_mode)))
    return found


def make_private(path: Path) -> list[tuple[Path, int]]:
    """Make the ledger at ``path`` the daemon's alone, before the daemon opens it (it holds
    ``daemon.lock``: no other writer). A missing ledger is created empty, 0600 (SQLite fills
    it, and gives its ``-wal``/``-shm`` that mode). One readable by others is moved to fresh
    0600 files: its WAL checkpointed into it (through a fresh ``-shm``, which no other user's
    lock holds), its bytes copied to a new file renamed over it, the old ``-wal``/``-shm``
    removed. Returns the files that were open to others, with their modes (empty: nothing
    was to do).

    Raises:
        LedgerError: the ledger cannot be made private (names the file and why).
    """
    if not os.path.lexists(path):
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, _PRIVATE_MODE))  # fmt: skip
        except OSError as exc:
            raise LedgerError(f"{path}: cannot create the private ledger: {exc}") from exc
    found = open_to_others(path)
    if not found:
        return []
    try:
        for file in ledger_files(path):  # no new reader from here on
            _chmod_private(file)
        # The -shm other users may hold locks on: SQLite rebuilds the wal-index from the -wal
        # in the fresh one it creates (0600, as the database file now is).
        ledger_files(path)[2].unlink(missing_ok=True)
        _checkpoint(path)
        _copy_to_fresh_file(path)
        for side in ledger_files(path)[1:]:  # the -wal is empty now, the -shm stale
            side.unlink(missing_ok=True)
        _sync_dir(path.parent)
    except (OSError, sqlite3.Error) as exc:
        raise LedgerError(f"{path}: cannot make the ledger private: {exc}") from exc
    return found


def _chmod_private(file: Path) -> None:
    """``file`` made 0600 through a descriptor (never through a link); missing: nothing."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, _PRIVATE_MODE)
    finally:
        os.close(fd)


def _checkpoint(path: Path) -> None:
    """Every committed page of the ``-wal`` written into ``path``, and the ``-wal`` emptied."""
    db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    try:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        db.close()
    if busy:
        raise LedgerError(
            f"{path}: cannot make the ledger private: another connection (of this uid) holds "
            "a read transaction; stop it and start again"
        )


def _copy_to_fresh_file(path: Path) -> None:
    """``path``'s bytes in a new 0600 file (mkstemp: O_EXCL) renamed over it."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".private")
    try:
        with open(path, "rb") as source, os.fdopen(fd, "wb") as copy:
            while chunk := source.read(1 << 20):
                copy.write(chunk)
            copy.flush()
            os.fsync(copy.fileno())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
