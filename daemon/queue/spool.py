"""Which spool files (``queue.d/*.jsonl``) a pass reads: at most ``max_files_per_user`` of each
owner's.

Anyone may create files in ``queue.d``, and every pass opens each one: a user who made
thousands would slow every pass for every user. So each owner's files are counted (one
``lstat`` each, no open) and only the first ``max_files_per_user`` are read, in this order:
those with bytes not yet ingested first, of these the one named ``<uid>.jsonl`` (where
``carbond submit`` writes) first, then by name. The rest wait for a later pass: once those
read are done, others with new lines come first, so no line is lost, only read late while the
owner keeps too many files.

:func:`spool_passes` follows that rule over the passes to come, for ``carbond jobs`` and
``status``: which pass first reads each file with lines not read yet.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from daemon.ledger import QueueFileRecord
from daemon.queue.files import SPOOL_DIR, spool_name_problem

__all__ = ["SpoolListing", "SpoolPasses", "list_spool", "spool_passes"]


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
    by_owner = _by_owner(state_dir, records)
    read: list[str] = []
    over: dict[int, int] = {}
    for uid, files in by_owner.items():
        read += [rel for _, _, rel, _ in sorted(files)[:max_files_per_user]]
        if len(files) > max_files_per_user:
            over[uid] = len(files) - max_files_per_user
    present = frozenset(rel for files in by_owner.values() for _, _, rel, _ in files)
    return SpoolListing(tuple(sorted(read)), over, present)


@dataclass(frozen=True, slots=True)
class SpoolPasses:
    """For each spool file with bytes not ingested yet (``queue.d/NAME``), the pass that first
    reads it (1: the next), as :func:`list_spool` picks them pass after pass while nothing else
    changes; None: no pass does meanwhile (its owner's files that stay unread once read fill
    every pass). ``files``: how many spool files each owner has (as the limit counts them)."""

    first: Mapping[str, int | None]
    files: Mapping[int, int]


def spool_passes(
    state_dir: Path,
    records: Mapping[str, QueueFileRecord],
    max_files_per_user: int,
    max_line_bytes: int,
) -> SpoolPasses:
    """:class:`SpoolPasses` of ``state_dir`` (``records``: the ledger's queue files). A file a
    pass reads stays unread, so first in line for each later pass, while its last line has no
    newline yet (shorter than ``max_line_bytes``: the reader waits for it) or its name is not
    its owner's (ignored, never read: :func:`spool_name_problem`); else it goes behind its
    owner's files still to read. A pass reads all of a file's complete lines (one with more
    than :attr:`FileReader.pass_bytes <daemon.queue.reader.FileReader.pass_bytes>` to read
    takes more passes: not counted here), also one whose owner's passwd lookup fails (the
    daemon holds it unread until that succeeds: these are its passes from then on). Opens
    the end of each file a pass reads; a missing or unreadable ``queue.d`` has none."""
    first: dict[str, int | None] = {}
    by_owner = _by_owner(state_dir, records)
    for files in by_owner.values():
        line = sorted(file for file in files if not file[0])  # in the order passes take them
        at = kept = number = 0  # kept: files read that stay unread, so before line[at:]
        while at < len(line) and kept < max_files_per_user:
            number += 1
            room = max_files_per_user - kept
            for _, _, rel, st in line[at : at + room]:
                first[rel] = number
                kept += _stays_unread(state_dir, rel, st, max_line_bytes)
            at += room
        first.update(dict.fromkeys(rel for _, _, rel, _ in line[at:]))  # kept fill each pass
    return SpoolPasses(first, {uid: len(files) for uid, files in by_owner.items()})


# A spool file as a pass ranks it, these in order (a plain tuple: sorting thousands at every
# pass compares in C): bytes not ingested yet first (False: some), of these ``<uid>.jsonl``
# first (False: that name), then by name (``queue.d/NAME``, unique), and its stat.
_File = tuple[bool, bool, str, os.stat_result]


def _by_owner(state_dir: Path, records: Mapping[str, QueueFileRecord]) -> dict[int, list[_File]]:
    """Every spool file of ``state_dir`` (one ``lstat`` each), by owner; none when ``queue.d``
    is missing or unreadable."""
    by_owner: dict[int, list[_File]] = {}
    try:
        entries = list(os.scandir(state_dir / SPOOL_DIR))
    except OSError:
        return by_owner
    for entry in entries:
        if not entry.name.endswith(".jsonl"):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # gone meanwhile
        rel = f"{SPOOL_DIR}/{entry.name}"
        file = (not _unread(st, records.get(rel)), entry.name != f"{st.st_uid}.jsonl", rel, st)
        by_owner.setdefault(st.st_uid, []).append(file)
    return by_owner


def _stays_unread(state_dir: Path, rel: str, st: os.stat_result, max_line_bytes: int) -> bool:
    """Whether spool file ``rel`` (``st``: its stat) still has bytes not ingested once a pass
    has read it: it is ignored (named for another uid, or not as a spool file), or it ends
    with an unfinished line the reader waits for (one already too long is rejected, and
    skipped to its end)."""
    if not stat.S_ISREG(st.st_mode):
        return False  # never read: only logged (and its size is no line's)
    if spool_name_problem(rel, st.st_uid) is not None:
        return True
    tail = min(st.st_size, max_line_bytes)
    try:
        fd = os.open(state_dir / rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        data = os.pread(fd, tail, st.st_size - tail)
    except OSError:
        return False
    finally:
        os.close(fd)
    if not data or data.endswith(b"\n"):
        return False
    newline = data.rfind(b"\n")
    unfinished = len(data) - newline - 1 if newline >= 0 else st.st_size
    return unfinished + 1 <= max_line_bytes


def _unread(st: os.stat_result, record: QueueFileRecord | None) -> bool:
    """Whether a file may hold bytes not ingested yet (not a regular file: it is only logged)."""
    if record is None:
        return stat.S_ISREG(st.st_mode) and st.st_size > 0
    return record.inode != st.st_ino or record.byte_offset != st.st_size
