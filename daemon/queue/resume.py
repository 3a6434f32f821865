"""Where the daemon goes on reading a queue file: one rule for the ingest and for ``doctor``.

The ledger keeps, per file, the byte offset read so far, its inode, the last bytes before the
offset (``tail``) and the CRC-32 of every byte before it (``prefix_crc``). Reading goes on from
the offset while the file still holds those bytes there, also as a copy with another inode (a
restored state dir); a file truncated below the offset, rewritten or replaced is read again
from the start.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Literal

from daemon.ledger import QueueFileRecord

__all__ = ["Resume", "prefix_crc", "resume"]

Why = Literal["new", "same", "moved", "truncated", "rewritten", "replaced"]


@dataclass(frozen=True, slots=True)
class Resume:
    """``offset``: where reading goes on (0 for ``new``, ``truncated``, ``rewritten`` and
    ``replaced``); ``crc``: the CRC-32 of the bytes before it when this call read them (a copy,
    or a record from before the CRC was kept), else None (the record's stands)."""

    offset: int
    why: Why
    crc: int | None = None


def resume(
    fd: int, st: os.stat_result, record: QueueFileRecord | None, chunk_bytes: int = 1 << 20
) -> Resume:
    """Where reading the open file ``fd`` (``st`` its stat) goes on, given the ledger's
    ``record`` of it (None: never read)."""
    if record is None:
        return Resume(0, "new")
    offset = record.byte_offset
    moved = record.inode is not None and record.inode != st.st_ino
    if st.st_size < offset:
        return Resume(0, "truncated")
    if record.tail and os.pread(fd, len(record.tail), offset - len(record.tail)) != record.tail:
        return Resume(0, "replaced" if moved else "rewritten")
    if not moved and record.prefix_crc is not None:
        return Resume(offset, "same")
    actual = prefix_crc(fd, offset, chunk_bytes)
    if moved and actual != record.prefix_crc:
        return Resume(0, "replaced")
    return Resume(offset, "moved" if moved else "same", actual)


def prefix_crc(fd: int, length: int, chunk_bytes: int = 1 << 20) -> int:
    """The CRC-32 of the first ``length`` bytes of ``fd``, read in chunks of ``chunk_bytes``."""
    crc, at = 0, 0
    while at < length:
        data = os.pread(fd, min(chunk_bytes, length - at), at)
        if not data:
            break
        crc, at = zlib.crc32(data, crc), at + len(data)
    return crc
