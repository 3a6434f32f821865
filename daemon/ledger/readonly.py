"""Reading the ledger from outside the daemon (the CLI's view,
:meth:`daemon.ledger.base.Connection.open_readonly`): why a user cannot read it, and whether a
view opened without locks still reads the file as it opened it."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from daemon.ledger.errors import MissingLedgerError

__all__ = [
    "FileState",
    "changed_under",
    "file_state",
    "missing_ledger",
    "missing_ledger_error",
    "not_yours",
]

# ``(device, inode, size, mtime_ns)`` of a file.
FileState = tuple[int, int, int, int]


def missing_ledger(path: Path) -> str:
    """Why there is no ledger file at ``path``: nothing there, or something else is."""
    return str(missing_ledger_error(path))


def missing_ledger_error(path: Path) -> MissingLedgerError:
    """:func:`missing_ledger` as the error of a command that reads the ledger (bad input)."""
    if os.path.lexists(path):
        return MissingLedgerError(path, "not a regular file, so not a ledger (move it aside)")
    return MissingLedgerError(path, "no ledger (has `carbond run` started with this state_dir?)")


def not_yours(path: Path) -> str:
    """Why this user cannot read the ledger at ``path``, and whom to ask."""
    st = path.stat()
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = f"uid {st.st_uid}"
    return (
        f"{path}: not readable by you (mode {stat.S_IMODE(st.st_mode):04o}, owner {owner}): "
        "this carbond keeps its ledger private (`[ledger] private = true`); ask an "
        "administrator to run the command for you (sudo)"
    )


def file_state(path: Path) -> FileState | None:
    """``(device, inode, size, mtime_ns)`` of the file at ``path`` (None: gone)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def changed_under(path: Path, before: FileState) -> str | None:
    """Why a view of the ledger at ``path`` opened immutable (no daemon ran, so no ``-wal``:
    a user who may not create ``-shm`` reads it so, without locks) when the file was
    ``before`` can no longer be trusted, or None while it can.

    A daemon started since writes to its WAL first, leaving the file as it was: the view
    reads the ledger as it was when it opened, as any read begun before those writes. When
    the daemon checkpoints its WAL into the file (in place: same inode, a new size or mtime),
    which no lock told the view, what it read may mix pages from before and after: silently
    (a job found that a count left out) or as "database disk image is malformed". A file
    renamed over the path (``[ledger] private``'s move) leaves the view its own inode.
    """
    now = file_state(path)
    if now is None or now[:2] != before[:2] or now == before:
        return None
    return (
        f"{path}: the daemon started and wrote the ledger while this command read it (it "
        "began with no daemon running, so it read the file without locks): what it read may "
        "mix the two; run the command again"
    )
