"""Ingestion: every complete new line of every queue file, exactly once.

Each pass reads a file from the byte offset stored in the ledger, handles its complete lines
(jobs, cancels, rejections), and commits the new offset in the same SQLite transaction as the
job rows. A partial last line stays for the next pass; a bad line never stops the next one.
"""

from __future__ import annotations

import errno
import os
import stat
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from daemon import killpoints
from daemon.ledger import Ledger, LedgerError, QueueFileRecord
from daemon.queue.compaction import Compactor
from daemon.queue.files import (
    QUEUE_NAME,
    RETIRED_DIR,
    SPOOL_DIR,
    QueueError,
    attribution,
    new_job_id,
    spool_name_problem,
    write_rejections,
)
from daemon.queue.line import CancelRequest, InvalidLineError, JobRequest, parse_line
from daemon.queue.reasons import failure_fields, over_limit_record, rejection
from daemon.queue.resume import resume
from daemon.queue.spool import list_spool
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
        max_files_per_user: int = 32,
    ) -> None:
        self.state_dir = state_dir
        self._max_files_per_user = max_files_per_user
        self._over: dict[int, int] = {}  # uid -> spool files left unread, as last told
        self._ledger = ledger
        self._max_line_bytes = max_line_bytes
        self._compact_min_bytes = compact_min_bytes
        self._compactor = Compactor(state_dir, ledger, retired_grace_s)
        self._known_regions = known_regions
        self.read_chunk_bytes = max(65_536, 4 * max_line_bytes)
        self.pass_bytes = 16 * self.read_chunk_bytes  # of one file per pass: see _read_lines
        self._ignored: dict[str, tuple[int, str]] = {}
        self._unusable: dict[str, tuple[str, int]] = {}  # file -> (event, inode) logged

    @classmethod
    def from_settings(cls, settings: Settings, ledger: Ledger) -> Queue:
        """The queue of ``settings.state_dir`` with its ``[queue]`` settings and regions."""
        return cls(
            settings.state_dir,
            ledger,
            max_line_bytes=settings.queue.max_line_bytes,
            compact_min_bytes=settings.queue.compact_min_bytes,
            retired_grace_s=settings.queue.retired_grace_s,
            max_files_per_user=settings.queue.max_files_per_user,
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
            if not self.state_dir.exists():
                self.state_dir.mkdir(parents=True, mode=0o755)
                os.chmod(self.state_dir, 0o755)  # whatever the umask: see daemon.statedir
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

        Each file is ingested on its own: when one fails (its rejected lines cannot be
        recorded, the state dir turned read-only), the others are still read, and the first
        such error is raised once every file has had its turn, so the step reports it.

        Raises:
            LedgerError: the ledger cannot be written (at once: every file would meet it;
                nothing of the failed file is lost: its offset did not move).
            DaemonError, OSError: a file could not be ingested (the others were).
        """
        self._compactor.recover(now)
        records = self._ledger.queue_files()
        result = IngestResult()
        errors: list[Exception] = []
        listing = list_spool(self.state_dir, records, self._max_files_per_user)
        live = [QUEUE_NAME, *listing.read]
        self._tell_over(listing.over, now, errors)
        # a file logged once (unusable, ignored) is forgotten once gone, not when a pass
        # leaves it unread (queue.max_files_per_user): read again, it is not logged again
        there = listing.present | {QUEUE_NAME}
        self._unusable = {rel: seen for rel, seen in self._unusable.items() if rel in there}
        self._ignored = {rel: i for rel, i in self._ignored.items() if rel in there}
        for rel in live:
            result += self._ingest_path(rel, records.get(rel), now, errors, retired=False)
        for rel, record in records.items():
            if record.retired_at is not None:
                result += self._ingest_path(rel, record, now, errors, retired=True)
        if errors:
            raise errors[0]
        return result

    def pending_bytes(self) -> int:
        """Bytes appended to live queue files but not yet ingested (queue health)."""
        records = self._ledger.queue_files()
        total = 0
        listing = list_spool(self.state_dir, records, self._max_files_per_user)
        for rel in (QUEUE_NAME, *listing.read):
            try:
                size = os.stat(self.state_dir / rel, follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
            record = records.get(rel)
            total += max(0, size - (record.byte_offset if record else 0))
        return total

    def ignored_files(self) -> dict[str, str]:
        """Spool files ignored (named for a uid that does not own them) that are still there,
        with why; each was logged once as ``queue_file_ignored``."""
        return {rel: reason for rel, (_, reason) in self._ignored.items()}

    # -- one file ---------------------------------------------------------------------------

    def _tell_over(self, over: Mapping[int, int], now: datetime, errors: list[Exception]) -> None:
        """Log, and record in ``rejected.jsonl`` for the owner to see, each user who has more
        spool files than a pass reads, once each time they go over (not at every pass)."""
        told = [uid for uid in over if uid not in self._over]
        self._over = dict(over)
        limit = self._max_files_per_user
        for uid in told:
            log.warning("queue_files_over_limit", uid=uid, unread_files=over[uid], limit=limit)
        notices = [over_limit_record(uid, over[uid], limit, now) for uid in told]
        try:
            write_rejections(self.state_dir, notices)
        except QueueError as exc:
            errors.append(exc)

    def _ingest_path(
        self,
        rel: str,
        record: QueueFileRecord | None,
        now: datetime,
        errors: list[Exception],
        *,
        retired: bool,
    ) -> IngestResult:
        """One file, isolated: what goes wrong in it is logged and kept in ``errors``, and the
        next file is read (a ledger failure, which every file would meet, propagates)."""
        try:
            return self._ingest_file(rel, record, now, retired=retired)
        except LedgerError:
            raise
        except Exception as exc:  # one file's trouble must never stop the others
            log.error("queue_file_failed", path=rel, error=f"{type(exc).__name__}: {exc}")
            errors.append(exc)
            return IngestResult()

    def _ingest_file(
        self, rel: str, record: QueueFileRecord | None, now: datetime, *, retired: bool
    ) -> IngestResult:
        path = self.state_dir / rel
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            if retired:
                self._ledger.forget_queue_file(rel)
            return IngestResult()
        except OSError as exc:  # a symlink (ELOOP), ...
            self._unusable_once(rel, "queue_file_unreadable", error=str(exc),
                                delete=retired and exc.errno == errno.ELOOP)  # fmt: skip
            return IngestResult()
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # a FIFO, a directory, ...
                self._unusable_once(rel, "queue_file_not_regular", st.st_ino, delete=retired)
                return IngestResult()
            self._unusable.pop(rel, None)
            if not retired and self._ignore(rel, st):
                return IngestResult()
            start = self._start(rel, record, fd, st)
            retired_at = record.retired_at if record is not None else None
            result, finished = self._read_lines(rel, fd, st, start, retired_at, now)
            if not finished:
                return result  # the rest next pass: neither deleted nor compacted before
            if retired:
                self._compactor.maybe_delete_retired(rel, fd, record, now)
            elif st.st_size >= self._compact_min_bytes and st.st_size > 0:
                self._compactor.maybe_compact(rel, fd, now)
            return result
        finally:
            os.close(fd)

    def _unusable_once(
        self, rel: str, event: str, inode: int | None = None, *, delete: bool = False, **fields: str
    ) -> None:
        """Log ``event`` for a file that cannot be read once per file and problem, not at every
        pass: anyone can make thousands of FIFOs or symlinks in ``queue.d``. ``delete``: it is
        in ``queue.retired/``, where it can only have been swapped in: remove it instead."""
        if delete:
            self._compactor.delete_odd_retired(rel, event)
            return
        if inode is None:
            try:
                inode = os.stat(self.state_dir / rel, follow_symlinks=False).st_ino
            except OSError:
                inode = 0
        if self._unusable.get(rel) != (event, inode):
            log.error(event, path=str(self.state_dir / rel), **fields)
        self._unusable[rel] = (event, inode)

    def _ignore(self, rel: str, st: os.stat_result) -> bool:
        """True (and logged once per file) for a spool file another user planted."""
        reason = spool_name_problem(rel, st.st_uid)
        if reason is None:
            self._ignored.pop(rel, None)
            return False
        if self._ignored.get(rel, (None, ""))[0] != st.st_ino:
            log.warning("queue_file_ignored", path=rel, uid=st.st_uid, reason=reason)
        self._ignored[rel] = (st.st_ino, reason)
        return True

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
        now: datetime,
    ) -> tuple[IngestResult, bool]:
        """Read from ``start`` in chunks of at most :attr:`read_chunk_bytes`, one transaction
        per chunk; stop at an unfinished line that may still become valid, or once
        :attr:`pass_bytes` are read (False: the rest waits for the next pass, so a user who
        floods a file, or a huge sparse one, delays the other files and steps by at most that)."""
        position = start
        finished = False
        owner = attribution(rel, st)
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
            parsed = parse_line(raw, now, self._known_regions)
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
