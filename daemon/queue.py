"""The queue files: appending under a lock, exactly-once ingestion, safe compaction.

Layout in ``state_dir``::

    queue.jsonl          the main queue; raw lines are attributed to its owner
    queue.d/<uid>.jsonl  per-user spool files (``carbond submit`` by someone who does not own
                         queue.jsonl); lines attributed to each file's owner
    queue.retired/       files renamed away by compaction, read until they are quiet
    rejected.jsonl       every refused line with its file, line number and reason

A line is attributed to the uid that owns the file it is in. A file writable by its group or
by others cannot vouch for who wrote a line, so its lines are rejected.

**Exactly once**: each pass reads a file from the byte offset stored in the ledger, handles its
complete lines, and commits the new offset in the same SQLite transaction as the job rows. A
partial last line stays for the next pass.

**Compaction** (a fully ingested file of at least ``compact_min_bytes``), under the file's
``flock`` so ``carbond submit`` waits: record the intent in the ledger, create an empty
replacement with the same owner and mode, ``rename`` the old file into ``queue.retired/``,
``link`` the replacement in (keeping a file a raw appender created meanwhile), then record the
new offsets. Writers that opened the old file before the rename keep appending to it; it is
still read until ``retired_grace_s`` after the rename, then deleted. A crash at any step is
finished or undone from the recorded intent on the next pass.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import stat
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from daemon.errors import DaemonError
from daemon.ledger import Ledger, QueueFileRecord
from daemon.queue_line import CancelRequest, InvalidLineError, JobRequest, parse_line
from daemon.settings import Settings

__all__ = [
    "QUEUE_NAME",
    "REJECTED_NAME",
    "RETIRED_DIR",
    "SPOOL_DIR",
    "IngestResult",
    "Queue",
    "QueueError",
    "append_line",
    "new_job_id",
    "submit_target",
]

QUEUE_NAME = "queue.jsonl"
SPOOL_DIR = "queue.d"
RETIRED_DIR = "queue.retired"
REJECTED_NAME = "rejected.jsonl"
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH

log = structlog.get_logger(__name__)


class QueueError(DaemonError):
    """A queue file cannot be written or read (names the file)."""


def new_job_id() -> str:
    """A fresh job id: ``j`` and 12 hex digits."""
    return "j" + uuid.uuid4().hex[:12]


def submit_target(state_dir: Path, uid: int) -> Path:
    """Where ``uid``'s ``carbond submit`` appends: ``queue.jsonl`` when ``uid`` owns it (or
    owns the state dir and it does not exist yet), else ``queue.d/<uid>.jsonl``."""
    main = state_dir / QUEUE_NAME
    try:
        st = os.stat(main, follow_symlinks=False)
    except FileNotFoundError:
        if state_dir.stat().st_uid == uid:
            return main
    else:
        if st.st_uid == uid and not st.st_mode & _OTHERS_WRITE:
            return main
    return state_dir / SPOOL_DIR / f"{uid}.jsonl"


def append_line(path: Path, record: dict[str, Any], max_line_bytes: int = 65_536) -> None:
    """Append ``record`` as one JSON line to ``path`` under ``flock``, then fsync.

    If compaction renamed the file while we waited for the lock, the line goes to the new file.

    Raises:
        QueueError: the line is too long or the file cannot be written.
    """
    data = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    if len(data) > max_line_bytes:
        raise QueueError(f"{path}: line of {len(data)} bytes exceeds {max_line_bytes}")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(20):
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise QueueError(f"{path}: cannot open the queue for appending: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                continue
            if current != os.fstat(fd).st_ino:
                continue  # compacted while we waited: append to the new file
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            return
        except OSError as exc:
            raise QueueError(f"{path}: cannot append: {exc}") from exc
        finally:
            os.close(fd)
    raise QueueError(f"{path}: the queue file keeps being replaced; try again")


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
        self._retired_grace_s = retired_grace_s
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
        self._recover(now)
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
                self._maybe_delete_retired(rel, fd, record, now)
            elif st.st_size >= self._compact_min_bytes and st.st_size > 0:
                self._maybe_compact(rel, fd, now)
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
        owner = self._attribution(rel, st)
        batch = _Batch([], [], [])
        position = offset
        with self._ledger.transaction():
            for raw in data[: end + 1].split(b"\n")[:-1]:
                line_no += 1
                self._one_line(rel, raw, line_no, position, owner, now, batch)
                position += len(raw) + 1
            self._write_rejections(batch.rejections)
            self._ledger.set_queue_file(rel, st.st_ino, position, line_no, retired_at)
        if batch.accepted or batch.rejections or batch.cancels:
            log.info("queue_ingested", path=rel, accepted=len(batch.accepted),
                     rejected=len(batch.rejections), duplicates=batch.duplicates,
                     cancels=len(batch.cancels), offset=position)  # fmt: skip
        return IngestResult(tuple(batch.accepted), batch.duplicates, len(batch.rejections),
                            tuple(batch.cancels))  # fmt: skip

    def _attribution(self, rel: str, st: os.stat_result) -> tuple[int, int] | str:
        """The (uid, gid) the lines of ``rel`` run as, or why they cannot be attributed."""
        if st.st_mode & _OTHERS_WRITE:
            return (
                f"{rel} is writable by other users, so its lines cannot be attributed to its "
                "owner; use `carbond submit` or your own queue.d/<uid>.jsonl"
            )
        if st.st_nlink > 1:
            return f"{rel} has {st.st_nlink} hard links, so its owner cannot vouch for its lines"
        if rel.startswith(f"{SPOOL_DIR}/") and rel != f"{SPOOL_DIR}/{st.st_uid}.jsonl":
            return (
                f"{rel} is owned by uid {st.st_uid}; a spool file must be named <owner uid>.jsonl"
            )
        try:
            gid = pwd.getpwuid(st.st_uid).pw_gid
        except KeyError:
            gid = st.st_gid
        return st.st_uid, gid

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

    def _write_rejections(self, rejections: list[dict[str, Any]]) -> None:
        if not rejections:
            return
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejections).encode()
        path = self.state_dir / REJECTED_NAME
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise QueueError(f"{path}: cannot record rejected lines: {exc}") from exc

    # -- compaction -------------------------------------------------------------------------

    def _maybe_compact(self, rel: str, fd: int, now: datetime) -> None:
        record = self._ledger.queue_files().get(rel)
        if record is None:
            return
        path = self.state_dir / rel
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            st = os.fstat(fd)
            if st.st_size != record.byte_offset:
                return  # new or partial lines: not everything is ingested
            try:
                if os.stat(path, follow_symlinks=False).st_ino != st.st_ino:
                    return
            except FileNotFoundError:
                return
            stamp = now.strftime("%Y%m%dT%H%M%S%f")
            dst = f"{RETIRED_DIR}/{path.name}.{st.st_uid}.{st.st_ino}.{stamp}"
            with self._ledger.transaction():
                self._ledger.begin_compaction(
                    rel, dst, st.st_ino, record.byte_offset, record.line_no, now
                )
            tmp = path.with_name(f".{path.name}.new-{uuid.uuid4().hex[:8]}")
            new_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                if os.geteuid() == 0:
                    os.fchown(new_fd, st.st_uid, st.st_gid)
                os.fchmod(new_fd, stat.S_IMODE(st.st_mode))
            finally:
                os.close(new_fd)
            (self.state_dir / RETIRED_DIR).mkdir(mode=0o700, exist_ok=True)
            os.rename(path, self.state_dir / dst)
            with contextlib.suppress(FileExistsError):  # a raw appender made one: keep it
                os.link(tmp, path)
            tmp.unlink()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self._finish_compaction(rel, dst, record.byte_offset, record.line_no, st.st_ino, now)
        log.info("queue_compacted", path=rel, retired=dst, bytes=record.byte_offset)

    def _finish_compaction(
        self, rel: str, dst: str, offset: int, line_no: int, inode: int | None, now: datetime
    ) -> None:
        try:
            new_inode: int | None = os.stat(self.state_dir / rel, follow_symlinks=False).st_ino
        except FileNotFoundError:
            new_inode = None
        with self._ledger.transaction():
            self._ledger.set_queue_file(dst, inode, offset, line_no, retired_at=now)
            self._ledger.set_queue_file(rel, new_inode, 0, 0)
            self._ledger.end_compaction(rel)

    def _recover(self, now: datetime) -> None:
        """Finish (renamed) or forget (not renamed) compactions a crash interrupted."""
        for row in self._ledger.compactions():
            if (self.state_dir / row["dst"]).exists():
                self._finish_compaction(
                    row["src"], row["dst"], row["byte_offset"], row["line_no"], row["inode"], now
                )
                log.info("queue_compaction_recovered", path=row["src"], retired=row["dst"])
            else:
                with self._ledger.transaction():
                    self._ledger.end_compaction(row["src"])
        for stray in self.state_dir.glob(f".{QUEUE_NAME}.new-*"):
            stray.unlink(missing_ok=True)
        spool = self.state_dir / SPOOL_DIR
        if spool.is_dir():
            for stray in spool.glob(".*.jsonl.new-*"):
                stray.unlink(missing_ok=True)

    def _maybe_delete_retired(
        self, rel: str, fd: int, record: QueueFileRecord | None, now: datetime
    ) -> None:
        if record is None or record.retired_at is None:
            return
        if (now - record.retired_at).total_seconds() < self._retired_grace_s:
            return
        current = self._ledger.queue_files().get(rel)
        size = os.fstat(fd).st_size
        if current is not None and size > current.byte_offset:
            tail = os.pread(fd, size - current.byte_offset, current.byte_offset)
            rejection = {
                "file": rel, "line_no": current.line_no + 1, "offset": current.byte_offset,
                "reason": f"line {current.line_no + 1}: incomplete (no newline) when its "
                "retired queue file was deleted", "uid": None, "rejected_at": now.isoformat(),
                "line": tail[:4096].decode("utf-8", errors="replace"),
            }  # fmt: skip
            with self._ledger.transaction():
                self._write_rejections([rejection])
                self._ledger.set_queue_file(
                    rel, current.inode, size, current.line_no + 1, current.retired_at
                )
        (self.state_dir / rel).unlink(missing_ok=True)
        self._ledger.forget_queue_file(rel)
        log.info("queue_retired_deleted", path=rel)
