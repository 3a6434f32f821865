"""The ledger's record of queue-file ingestion: offsets and compaction intents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from daemon.ledger.base import Connection
from daemon.ledger.records import QueueFileRecord
from daemon.ledger.values import dt, ts

__all__ = ["QueueState"]


class QueueState(Connection):
    """Ingestion progress per queue file (paths relative to the state dir)."""

    def queue_files(self) -> dict[str, QueueFileRecord]:
        """Ingestion progress of every queue file, by path relative to the state dir."""
        rows = self._exec(
            "SELECT path, inode, byte_offset, line_no, retired_at, tail, skipping, prefix_crc "
            "FROM queue_files"
        )
        return {
            r["path"]: QueueFileRecord(r["path"], r["inode"], r["byte_offset"], r["line_no"],
                                       dt(r["retired_at"]), r["tail"], bool(r["skipping"]),
                                       r["prefix_crc"])
            for r in rows
        }  # fmt: skip

    def set_queue_file(
        self,
        path: str,
        inode: int | None,
        byte_offset: int,
        line_no: int,
        retired_at: datetime | None = None,
        *,
        tail: bytes | None = None,
        skipping: bool = False,
        prefix_crc: int | None = None,
    ) -> None:
        """Record ingestion progress of ``path`` (call inside the ingest transaction); see
        :class:`QueueFileRecord` for ``tail``, ``skipping`` and ``prefix_crc``."""
        self._exec(
            "INSERT OR REPLACE INTO queue_files (path, inode, byte_offset, line_no, retired_at, "
            "tail, skipping, prefix_crc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (path, inode, byte_offset, line_no, ts(retired_at), tail, int(skipping), prefix_crc),
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
            (src, dst, inode, byte_offset, line_no, ts(at)),
        )

    def end_compaction(self, src: str) -> None:
        """Forget a finished or abandoned compaction."""
        self._exec("DELETE FROM compactions WHERE src = ?", (src,))
