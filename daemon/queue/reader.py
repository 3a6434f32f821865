"""Reading one queue file from where the last pass stopped: in chunks, one transaction each,
every complete line handled (a job, a cancel, a duplicate, a rejection) under its own savepoint.

:class:`FileReader` is held by :class:`~daemon.queue.ingest.Queue` (its ``reader``), which
decides which files are read, and when, and compacts them.
"""

from __future__ import annotations

import os
import stat
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from daemon import killpoints
from daemon.ledger import Ledger, LedgerError, QueueFileRecord
from daemon.queue.file_verdict import writable_by_others
from daemon.queue.files import OwnerUnknown, attribution, new_job_id
from daemon.queue.job_request import CancelRequest, JobRequest
from daemon.queue.line import parse_line
from daemon.queue.reasons import InvalidLineError, failure_fields, rejection
from daemon.queue.rejected import write_rejections
from daemon.queue.resume import resume
from policies.footprint import DEFAULT_GPU_CATALOG, GpuCatalog

__all__ = ["FileReader", "IngestResult"]

log = structlog.get_logger("daemon.queue.ingest")  # its events are ingestion's


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
    written: int = 0  # rejections already appended to rejected.jsonl
    private: bool = False  # the file is not readable by every user: see _rejection


@dataclass(frozen=True, slots=True)
class _Position:
    """Where reading a file resumes: byte offset, lines counted, inside an over-long line,
    and the CRC-32 of the bytes before ``offset``."""

    offset: int
    line_no: int
    skipping: bool
    crc: int = 0


_TAIL_BYTES = 32  # bytes before the offset kept to recognise a rewritten file


class FileReader:
    """Reads a queue file of ``state_dir`` from its stored position into ``ledger``: lines
    of at most ``max_line_bytes``, naming only ``known_regions`` (None: any)."""

    def __init__(
        self,
        state_dir: Path,
        ledger: Ledger,
        *,
        max_line_bytes: int,
        known_regions: Sequence[str] | None,
        catalog: GpuCatalog = DEFAULT_GPU_CATALOG,
    ) -> None:
        self.state_dir = state_dir
        self._ledger = ledger
        self._max_line_bytes = max_line_bytes
        self._known_regions = known_regions
        self._catalog = catalog  # a line's gpu_types: the site's catalog, its own types too
        self.read_chunk_bytes = max(65_536, 4 * max_line_bytes)
        self.pass_bytes = 16 * self.read_chunk_bytes  # of one file per pass: see _read_lines
        self._owner_unknown: set[str] = set()  # files left unread for that, as logged
        self._writable: dict[str, int] = {}  # inode of each file told queue_file_writable

    def read(
        self,
        rel: str,
        record: QueueFileRecord | None,
        fd: int,
        st: os.stat_result,
        now: datetime,
    ) -> tuple[IngestResult, bool]:
        """Read file ``rel`` (open as ``fd``, ``st`` its stat) from where ``record`` says the
        last pass stopped (from its start when it is new, truncated, rewritten or replaced);
        False: it is not finished (:meth:`_read_lines`), or its owner's passwd lookup failed
        (:class:`~daemon.queue.files.OwnerUnknown`): nothing is read, it waits for a pass
        where the lookup succeeds (logged once as ``queue_file_owner_unknown``)."""
        owner = attribution(rel, st)
        self._tell_writable(rel, st)
        if isinstance(owner, OwnerUnknown):
            if rel not in self._owner_unknown:
                log.warning("queue_file_owner_unknown", path=rel, uid=owner.uid,
                            reason=owner.reason)  # fmt: skip
            self._owner_unknown.add(rel)
            return IngestResult(), False
        if rel in self._owner_unknown:
            self._owner_unknown.discard(rel)
            log.info("queue_file_owner_known", path=rel, uid=st.st_uid)
        start = self._start(rel, record, fd, st)
        retired_at = record.retired_at if record is not None else None
        return self._read_lines(rel, fd, st, start, retired_at, owner, now)

    def forget(self, present: Collection[str]) -> None:
        """Forget the files told writable that are gone (not in ``present``): anyone can make
        thousands of files in ``queue.d``."""
        self._writable = {rel: ino for rel, ino in self._writable.items() if rel in present}

    def _tell_writable(self, rel: str, st: os.stat_result) -> None:
        """Log ``queue_file_writable`` once per file other users can write (each line read
        from it is rejected as well, ``queue_line_rejected``), not at every pass: again only
        once it was not, or is another file (inode)."""
        if not writable_by_others(st.st_mode):
            self._writable.pop(rel, None)
            return
        if self._writable.get(rel) != st.st_ino:
            log.warning("queue_file_writable", path=rel, uid=st.st_uid,
                        mode=f"{stat.S_IMODE(st.st_mode):04o}",
                        reason="writable by other users: its lines are rejected; its owner "
                        "must move it away and submit again (a chmod back leaves a "
                        "descriptor opened meanwhile writable)")  # fmt: skip
        self._writable[rel] = st.st_ino

    def _start(
        self, rel: str, record: QueueFileRecord | None, fd: int, st: os.stat_result
    ) -> _Position:
        where = resume(fd, st, record, self.read_chunk_bytes)
        if record is None or where.why == "new":
            return _Position(0, 0, skipping=False)
        if where.why == "truncated":
            log.warning("queue_file_truncated", path=rel, offset=record.byte_offset)
            return _Position(0, 0, skipping=False)
        if where.why in ("rewritten", "replaced"):
            log.warning(f"queue_file_{where.why}", path=rel, offset=record.byte_offset,
                        old_inode=record.inode, inode=st.st_ino)  # fmt: skip
            return _Position(0, 0, skipping=False)
        crc = record.prefix_crc
        if where.crc is not None:  # a copy, or a row from before its CRC was kept
            if where.why == "moved" and record.byte_offset:  # the same bytes, another inode
                log.info("queue_file_moved", path=rel, old_inode=record.inode, inode=st.st_ino,
                         offset=record.byte_offset)  # fmt: skip
            with self._ledger.transaction():  # once, not at every pass
                self._ledger.set_queue_file(
                    rel, st.st_ino, record.byte_offset, record.line_no, record.retired_at,
                    tail=record.tail, skipping=record.skipping, prefix_crc=where.crc,
                )  # fmt: skip
            crc = where.crc
        return _Position(record.byte_offset, record.line_no, record.skipping, crc or 0)

    def _read_lines(
        self,
        rel: str,
        fd: int,
        st: os.stat_result,
        start: _Position,
        retired_at: datetime | None,
        owner: tuple[int, int] | str,
        now: datetime,
    ) -> tuple[IngestResult, bool]:
        """Read from ``start`` in chunks of at most :attr:`read_chunk_bytes`, one transaction
        per chunk; stop at an unfinished line that may still become valid, or once
        :attr:`pass_bytes` are read (False: the rest waits for the next pass, so a user who
        floods a file, or a huge sparse one, delays the other files and steps by at most that)."""
        position = start
        finished = False
        batch = _Batch([], [], [], private=not st.st_mode & stat.S_IROTH)
        while True:
            size = os.fstat(fd).st_size
            data = os.pread(fd, min(max(size - position.offset, 0), self.read_chunk_bytes),
                            position.offset)  # fmt: skip
            if not data:
                finished = True
                break
            with self._ledger.transaction():
                moved = self._chunk(rel, data, position, owner, now, batch)
                moved = replace(moved, crc=zlib.crc32(data[: moved.offset - position.offset],
                                                      position.crc))  # fmt: skip
                write_rejections(self.state_dir, batch.rejections[batch.written :], st)
                batch.written = len(batch.rejections)
                if moved.offset != position.offset:
                    tail = os.pread(fd, min(_TAIL_BYTES, moved.offset),
                                    moved.offset - min(_TAIL_BYTES, moved.offset))  # fmt: skip
                    self._ledger.set_queue_file(rel, st.st_ino, moved.offset, moved.line_no,
                                                retired_at, tail=tail,
                                                skipping=moved.skipping,
                                                prefix_crc=moved.crc)  # fmt: skip
                killpoints.reached("ingest_commit")
            if moved.offset == position.offset:
                finished = True
                break  # an unfinished line: wait for its newline
            position = moved
            if position.offset - start.offset >= self.pass_bytes:
                log.info("queue_file_deferred", path=rel, offset=position.offset, size=size)
                break
        killpoints.reached("ingest_done")
        if batch.accepted or batch.rejections or batch.cancels:
            log.info("queue_ingested", path=rel, accepted=len(batch.accepted),
                     rejected=len(batch.rejections), duplicates=batch.duplicates,
                     cancels=len(batch.cancels), offset=position.offset)  # fmt: skip
        return IngestResult(tuple(batch.accepted), batch.duplicates, len(batch.rejections),
                            tuple(batch.cancels)), finished  # fmt: skip

    def _chunk(
        self,
        rel: str,
        data: bytes,
        at: _Position,
        owner: tuple[int, int] | str,
        now: datetime,
        batch: _Batch,
    ) -> _Position:
        """Handle the complete lines of ``data`` (read at ``at``); return where the next read
        starts. An unfinished tail already too long to be valid is rejected now, once, and
        the rest of that line is skipped up to its newline."""
        offset, line_no, used = at.offset, at.line_no, 0
        if at.skipping:
            newline = data.find(b"\n")
            if newline < 0:
                return _Position(offset + len(data), line_no, skipping=True)
            used = newline + 1
        end = data.rfind(b"\n")
        if end >= used:
            for raw in data[used : end + 1].split(b"\n")[:-1]:
                line_no += 1
                self._one_line(rel, raw, line_no, offset + used, owner, now, batch)
                used += len(raw) + 1
                killpoints.reached("ingest_line")
        rest = len(data) - used
        if rest + 1 > self._max_line_bytes:
            line_no += 1
            raw = data[used:]
            batch.rejections.append(rejection(rel, raw, line_no, offset + used, owner, now,
                                               f"line {line_no}: longer than "
                                               f"{self._max_line_bytes} bytes"))  # fmt: skip
            return _Position(offset + len(data), line_no, skipping=True)
        return _Position(offset + used, line_no, skipping=False)

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
        """One complete line: ingested, a cancel, a duplicate, or rejected with a reason,
        whatever it holds. Its ledger writes are one savepoint: a line that fails half-way
        leaves nothing behind and is rejected."""

        def reject(reason: str, public: str | None = None) -> None:
            batch.rejections.append(rejection(rel, raw, line_no, offset, owner, now, reason,
                                               public=public, private=batch.private))  # fmt: skip

        if not raw.strip():
            return
        if len(raw) + 1 > self._max_line_bytes:
            reject(f"line {line_no}: longer than {self._max_line_bytes} bytes")
            return
        if isinstance(owner, str):
            reject(f"line {line_no}: {owner}")
            return
        accepted, cancels = len(batch.accepted), len(batch.cancels)
        try:
            with self._ledger.savepoint():
                self._apply(rel, raw, line_no, owner, now, batch, reject)
        except LedgerError:
            raise
        except Exception as exc:  # the line boundary: nothing a line holds stops the next
            del batch.accepted[accepted:], batch.cancels[cancels:]
            log.error("queue_line_failed", file=rel, line_no=line_no,
                      **failure_fields(exc, private=batch.private))  # fmt: skip
            reject(f"line {line_no}: cannot be ingested ({type(exc).__name__})")

    def _apply(
        self,
        rel: str,
        raw: bytes,
        line_no: int,
        owner: tuple[int, int],
        now: datetime,
        batch: _Batch,
        reject: Any,
    ) -> None:
        try:
            parsed = parse_line(raw, now, self._known_regions, self._catalog)
        except InvalidLineError as exc:
            reject(f"line {line_no}: {exc}", f"line {line_no}: {exc.public}")
            return
        uid, gid = owner
        if isinstance(parsed, CancelRequest):
            job_owner = self._ledger.job_owner(parsed.job_id)
            if job_owner is None:
                reject(f"line {line_no}: field 'cancel': unknown job {parsed.job_id!r}",
                       f"line {line_no}: field 'cancel': unknown job")  # fmt: skip
            elif uid not in (job_owner, 0):
                reject(f"line {line_no}: field 'cancel': job {parsed.job_id!r} is not yours",
                       f"line {line_no}: field 'cancel': the job is not yours")  # fmt: skip
            else:  # credited to the file's owner: root's cancel of an unread job, written
                # after its line in the owner's file, reads as the owner's (a "by" field in
                # the line could be forged by that owner; docs/daemon.md)
                self._ledger.request_cancel(parsed.job_id, now, uid)
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
            reject(f"line {line_no}: field 'id': {job_id!r} is already used by another user",
                   f"line {line_no}: field 'id': already used by another user")  # fmt: skip
