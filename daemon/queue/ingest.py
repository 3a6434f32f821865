"""Ingestion: every complete new line of every queue file, exactly once.

Each pass reads a file from the byte offset stored in the ledger, handles its complete lines
(jobs, cancels, rejections), and commits the new offset in the same SQLite transaction as the
job rows. A partial last line stays for the next pass; a bad line never stops the next one.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from daemon import killpoints
from daemon.ledger import Ledger, QueueFileRecord
from daemon.queue.compaction import Compactor
from daemon.queue.files import (
    QUEUE_NAME,
    RETIRED_DIR,
    SPOOL_DIR,
    QueueError,
    attribution,
    new_job_id,
    write_rejections,
)
from daemon.queue.line import CancelRequest, InvalidLineError, JobRequest, parse_line
from daemon.settings import Settings

__all__ = ["IngestResult", "Queue"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one ingestion pass did."""

    accepted: tuple[str, ...] = ()
    duplicates: int = 0
    rejected: int = 0
    cancels: tuple[str, ...] = ()

    def __add__(self, other: IngestResult) -> IngestResult:
        return IngestResult(
            self.accepted + other.accepted,
            self.duplicates + other.duplicates,
            self.rejected + other.rejected,
            self.cancels + other.cancels,
        )


@dataclass(slots=True)
class _Batch:
    accepted: list[str]
    cancels: list[str]
    rejections: list[dict[str, Any]]
    duplicates: int = 0


class Queue:
    """The queue files of one state dir, ingested into ``ledger``."""

    def __init__(
        self,
        state_dir: Path,
        ledger: Ledger,
        *,
        max_line_bytes: int = 65_536,
        compact_min_bytes: int = 1_048_576,
        retired_grace_s: float = 60.0,
        known_regions: Sequence[str] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self._ledger = ledger
        self._max_line_bytes = max_line_bytes
        self._compact_min_bytes = compact_min_bytes
        self._compactor = Compactor(state_dir, ledger, retired_grace_s)
        self._known_regions = known_regions

    @classmethod
    def from_settings(cls, settings: Settings, ledger: Ledger) -> Queue:
        """The queue of ``settings.state_dir`` with its ``[queue]`` settings and regions."""
        return cls(
            settings.state_dir,
            ledger,
            max_line_bytes=settings.queue.max_line_bytes,
            compact_min_bytes=settings.queue.compact_min_bytes,
            retired_grace_s=settings.queue.retired_grace_s,
            known_regions=[region.name for region in settings.regions] or None,
        )

    @property
    def path(self) -> Path:
        """The main queue file."""
        return self.state_dir / QUEUE_NAME

    def prepare(self) -> None:
        """Create the state dir layout: ``queue.jsonl`` (0644), ``queue.d`` (1733, sticky),
        ``queue.retired`` (0700). Existing files keep their owner and mode.

        Raises:
            QueueError: the state dir cannot be written.
        """
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            os.close(fd)
            spool = self.state_dir / SPOOL_DIR
            if not spool.exists():
                spool.mkdir()
                os.chmod(spool, 0o1733)
            (self.state_dir / RETIRED_DIR).mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise QueueError(f"{self.state_dir}: cannot prepare the queue: {exc}") from exc

    def ingest(self, now: datetime) -> IngestResult:
        """Ingest every complete new line of every queue file, then compact what is done.

        Raises:
            LedgerError: the ledger cannot be written (nothing of the failed file is lost:
                its offset did not move).
        """
        self._compactor.recover(now)
        records = self._ledger.queue_files()
        result = IngestResult()
        for rel in self._live_files():
            result += self._ingest_path(rel, records.get(rel), now, retired=False)
        for rel, record in records.items():
            if record.retired_at is not None:
                result += self._ingest_path(rel, record, now, retired=True)
        return result

    def pending_bytes(self) -> int:
        """Bytes appended to live queue files but not yet ingested (queue health)."""
        records = self._ledger.queue_files()
        total = 0
        for rel in self._live_files():
            try:
                size = os.stat(self.state_dir / rel, follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
            record = records.get(rel)
            total += max(0, size - (record.byte_offset if record else 0))
        return total

    # -- one file ---------------------------------------------------------------------------

    def _live_files(self) -> list[str]:
        names = [QUEUE_NAME]
        spool = self.state_dir / SPOOL_DIR
        if spool.is_dir():
            names += sorted(f"{SPOOL_DIR}/{p.name}" for p in spool.glob("*.jsonl"))
        return names

    def _ingest_path(
        self, rel: str, record: QueueFileRecord | None, now: datetime, *, retired: bool
    ) -> IngestResult:
        path = self.state_dir / rel
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            if retired:
                self._ledger.forget_queue_file(rel)
            return IngestResult()
        except OSError as exc:
            log.error("queue_file_unreadable", path=str(path), error=str(exc))
            return IngestResult()
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                log.error("queue_file_not_regular", path=str(path))
                return IngestResult()
            offset, line_no = self._start(rel, record, st)
            retired_at = record.retired_at if record is not None else None
            result = self._read_lines(rel, fd, st, (offset, line_no, retired_at), now)
            if retired:
                self._compactor.maybe_delete_retired(rel, fd, record, now)
            elif st.st_size >= self._compact_min_bytes and st.st_size > 0:
                self._compactor.maybe_compact(rel, fd, now)
            return result
        finally:
            os.close(fd)

    def _start(
        self, rel: str, record: QueueFileRecord | None, st: os.stat_result
    ) -> tuple[int, int]:
        if record is None:
            return 0, 0
        if record.inode is not None and record.inode != st.st_ino:
            log.warning("queue_file_replaced", path=rel, old_inode=record.inode, inode=st.st_ino)
            return 0, 0
        if st.st_size < record.byte_offset:
            log.warning("queue_file_truncated", path=rel, offset=record.byte_offset)
            return 0, 0
        return record.byte_offset, record.line_no

    def _read_lines(
        self,
        rel: str,
        fd: int,
        st: os.stat_result,
        start: tuple[int, int, datetime | None],
        now: datetime,
    ) -> IngestResult:
        offset, line_no, retired_at = start
        size = os.fstat(fd).st_size
        if size <= offset:
            return IngestResult()
        data = os.pread(fd, size - offset, offset)
        end = data.rfind(b"\n")
        if end < 0:
            return IngestResult()  # a partial line: wait for its newline
        owner = attribution(rel, st)
        batch = _Batch([], [], [])
        position = offset
        with self._ledger.transaction():
            for raw in data[: end + 1].split(b"\n")[:-1]:
                line_no += 1
                self._one_line(rel, raw, line_no, position, owner, now, batch)
                position += len(raw) + 1
                killpoints.reached("ingest_line")
            write_rejections(self.state_dir, batch.rejections)
            self._ledger.set_queue_file(rel, st.st_ino, position, line_no, retired_at)
            killpoints.reached("ingest_commit")
        killpoints.reached("ingest_done")
        if batch.accepted or batch.rejections or batch.cancels:
            log.info("queue_ingested", path=rel, accepted=len(batch.accepted),
                     rejected=len(batch.rejections), duplicates=batch.duplicates,
                     cancels=len(batch.cancels), offset=position)  # fmt: skip
        return IngestResult(tuple(batch.accepted), batch.duplicates, len(batch.rejections),
                            tuple(batch.cancels))  # fmt: skip

    def _one_line(
        self,
        rel: str,
        raw: bytes,
        line_no: int,
        offset: int,
        owner: tuple[int, int] | str,
        now: datetime,
        batch: _Batch,
    ) -> None:
        def reject(reason: str) -> None:
            batch.rejections.append({
                "file": rel, "line_no": line_no, "offset": offset, "reason": reason,
                "uid": owner[0] if isinstance(owner, tuple) else None,
                "rejected_at": now.isoformat(),
                "line": raw[:4096].decode("utf-8", errors="replace"),
            })  # fmt: skip
            log.warning("queue_line_rejected", file=rel, line_no=line_no, reason=reason)

        if not raw.strip():
            return
        if len(raw) + 1 > self._max_line_bytes:
            reject(f"line {line_no}: longer than {self._max_line_bytes} bytes")
            return
        if isinstance(owner, str):
            reject(f"line {line_no}: {owner}")
            return
        try:
            parsed = parse_line(raw, now, self._known_regions)
        except InvalidLineError as exc:
            reject(f"line {line_no}: {exc}")
            return
        uid, gid = owner
        if isinstance(parsed, CancelRequest):
            job_owner = self._ledger.job_owner(parsed.job_id)
            if job_owner is None:
                reject(f"line {line_no}: field 'cancel': unknown job {parsed.job_id!r}")
            elif uid not in (job_owner, 0):
                reject(f"line {line_no}: field 'cancel': job {parsed.job_id!r} is not yours")
            else:
                self._ledger.request_cancel(parsed.job_id, now)
                batch.cancels.append(parsed.job_id)
            return
        self._add_job(rel, parsed, uid, gid, line_no, now, batch, reject)

    def _add_job(
        self,
        rel: str,
        request: JobRequest,
        uid: int,
        gid: int,
        line_no: int,
        now: datetime,
        batch: _Batch,
        reject: Any,
    ) -> None:
        job_id = request.job_id or new_job_id()
        job_owner = self._ledger.job_owner(job_id)
        if job_owner is None:
            self._ledger.add_job(request.with_id(job_id), uid, gid, f"{rel}:{line_no}", now)
            batch.accepted.append(job_id)
        elif job_owner == uid:
            batch.duplicates += 1
            log.info("queue_line_duplicate", file=rel, line_no=line_no, job_id=job_id)
        else:
            reject(f"line {line_no}: field 'id': {job_id!r} is already used by another user")
