"""Which spool files (``queue.d/*.jsonl``) a pass reads: at most ``max_files_per_user`` of each
owner's.

Anyone may create files in ``queue.d``, and every pass opens each one: a user who made
thousands would slow every pass for every user. So each owner's files are counted (one
``lstat`` each, no open) and only the first ``max_files_per_user`` are read, in this order:
those with bytes not yet ingested first, of these the one named ``<uid>.jsonl`` (where
``carbond submit`` writes) first, then by name. The rest wait for a later pass: once those
read are done, others with new lines come first, so no line is lost, only read late while the
owner keeps too many files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from daemon.ledger import QueueFileRecord
from daemon.queue.files import SPOOL_DIR

__all__ = ["SpoolListing", "list_spool"]


@dataclass(frozen=True, slots=True)
class SpoolListing:
    """The spool files to read (``queue.d/NAME``, sorted), for each owner over the limit
    how many of their files this pass leaves unread, and every spool file there is (read or
    not: what the queue remembers of a file is forgotten once it is gone)."""

    read: tuple[str, ...]
    over: Mapping[int, int]
    present: frozenset[str] = frozenset()


def list_spool(
    state_dir: Path, records: Mapping[str, QueueFileRecord], max_files_per_user: int
) -> SpoolListing:
    """The spool files of ``state_dir`` a pass reads (see the module docstring); ``records``:
    the ledger's queue files, to tell which have unread bytes. A missing or unreadable
    ``queue.d`` has none."""
    by_owner: dict[int, list[tuple[bool, bool, str]]] = {}
    try:
        entries = list(os.scandir(state_dir / SPOOL_DIR))
    except OSError:
        return SpoolListing((), {})
    for entry in entries:
        if not entry.name.endswith(".jsonl"):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # gone meanwhile
        rel = f"{SPOOL_DIR}/{entry.name}"
        key = (not _unread(st, records.get(rel)), entry.name != f"{st.st_uid}.jsonl", rel)
        by_owner.setdefault(st.st_uid, []).append(key)
    read: list[str] = []
    over: dict[int, int] = {}
    for uid, keys in by_owner.items():
        keys.sort()
        read += [rel for _, _, rel in keys[:max_files_per_user]]
        if len(keys) > max_files_per_user:
            over[uid] = len(keys) - max_files_per_user
    present = frozenset(rel for keys in by_owner.values() for _, _, rel in keys)
    return SpoolListing(tuple(sorted(read)), over, present)


def _unread(st: os.stat_result, record: QueueFileRecord | None) -> bool:
    """Whether a file may hold bytes not ingested yet (not a regular file: it is only logged)."""
    if record is None:
        return stat.S_ISREG(st.st_mode) and st.st_size > 0
    return record.inode != st.st_ino or record.byte_offset != st.st_size
