"""Compaction of fully ingested queue files, crash-safe against concurrent appenders.

Under the file's ``flock`` (so ``carbond submit`` waits; taken without waiting, since anyone
who can read the file can hold it: a locked file is compacted on a later pass): commit the
intent to the ledger, create an empty replacement with the same owner and permissions,
``rename`` the old file into ``queue.retired/``, ``link`` the replacement in (keeping a file a
raw appender created meanwhile), then commit the new offsets. Writers that opened the old file
before the rename keep appending to it; it is still read until ``retired_grace_s`` after the
rename, then deleted. A crash at any step is finished (renamed) or undone (not renamed) by
:meth:`recover`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import uuid
from datetime import datetime
from pathlib import Path

import structlog

from daemon import killpoints
from daemon.ledger import Ledger, QueueFileRecord
from daemon.queue.files import (
    QUEUE_NAME,
    RETIRED_DIR,
    SPOOL_DIR,
    attribution,
)
from daemon.queue.rejected import rejection_record, write_rejections

__all__ = ["Compactor"]

log = structlog.get_logger(__name__)


class Compactor:
    """Retires and deletes the queue files of ``state_dir``, recording each step in ``ledger``."""

    def __init__(self, state_dir: Path, ledger: Ledger, retired_grace_s: float) -> None:
        self.state_dir = state_dir
        self.retired_grace_s = retired_grace_s
        self._ledger = ledger

    def maybe_compact(self, rel: str, fd: int, now: datetime) -> None:
        """Retire ``rel`` (open as ``fd``) if every byte of it is ingested."""
        record = self._ledger.queue_files().get(rel)
        if record is None or record.skipping:
            return  # (while skipping an over-long line, its rest must stay in this file)
        path = self.state_dir / rel
        try:  # never wait: anyone who can read the file can hold a lock on it for ever
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("queue_compaction_deferred", path=rel, reason="the file is locked")
            return
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
            killpoints.reached("compact_begun")
            tmp = path.with_name(f".{path.name}.new-{uuid.uuid4().hex[:8]}")
            new_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                if os.geteuid() == 0:
                    os.fchown(new_fd, st.st_uid, st.st_gid)
                # The permission bits only: the unit (RestrictSUIDSGID=) refuses set-ID bits,
                # which the file's owner may have set, and they mean nothing on a queue file.
                os.fchmod(new_fd, stat.S_IMODE(st.st_mode) & 0o777)
            finally:
                os.close(new_fd)
            (self.state_dir / RETIRED_DIR).mkdir(mode=0o700, exist_ok=True)
            os.rename(path, self.state_dir / dst)
            killpoints.reached("compact_renamed")
            with contextlib.suppress(FileExistsError):  # a raw appender made one: keep it
                os.link(tmp, path)
            tmp.unlink()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        killpoints.reached("compact_linked")
        self._finish(rel, dst, record.byte_offset, record.line_no, st.st_ino, now,
                     record.prefix_crc)  # fmt: skip
        log.info("queue_compacted", path=rel, retired=dst, bytes=record.byte_offset)

    def _finish(
        self,
        rel: str,
        dst: str,
        offset: int,
        line_no: int,
        inode: int | None,
        now: datetime,
        prefix_crc: int | None = None,
    ) -> None:
        try:
            new_inode: int | None = os.stat(self.state_dir / rel, follow_symlinks=False).st_ino
        except FileNotFoundError:
            new_inode = None
        with self._ledger.transaction():
            self._ledger.set_queue_file(dst, inode, offset, line_no, retired_at=now,
                                        prefix_crc=prefix_crc)  # fmt: skip
            self._ledger.set_queue_file(rel, new_inode, 0, 0, prefix_crc=0)
            self._ledger.end_compaction(rel)

    def recover(self, now: datetime) -> None:
        """Finish (renamed) or forget (not renamed) compactions a crash interrupted."""
        for row in self._ledger.compactions():
            if (self.state_dir / row["dst"]).exists():
                self._finish(
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

    def delete_odd_retired(self, rel: str, found: str) -> None:
        """Remove retired ``rel``, which is not a regular file, and forget it.

        Only the daemon writes in ``queue.retired/``, but a spool file's owner can swap a
        symlink, a FIFO or a directory in for their file between the compaction's check and
        its rename, which then moves that into ``queue.retired/``: never readable, it was
        never deleted either, and was tried again at every pass. ``unlink`` removes a symlink
        itself, never what it points to; a directory is removed without following any link
        in it.
        """
        path = self.state_dir / rel
        try:
            if stat.S_ISDIR(os.stat(path, follow_symlinks=False).st_mode):
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            pass
        self._ledger.forget_queue_file(rel)
        log.warning("queue_retired_odd_deleted", path=rel, found=found)

    def maybe_delete_retired(
        self, rel: str, fd: int, record: QueueFileRecord | None, now: datetime
    ) -> None:
        """Delete retired ``rel`` once its grace period is over (a partial tail is rejected)."""
        if record is None or record.retired_at is None:
            return
        if (now - record.retired_at).total_seconds() < self.retired_grace_s:
            return
        current = self._ledger.queue_files().get(rel)
        st = os.fstat(fd)
        size = st.st_size
        if current is not None and size > current.byte_offset:
            tail = os.pread(fd, size - current.byte_offset, current.byte_offset)
            owner = attribution(rel, st)  # its writer's, so their `carbond status` shows it
            line_no = current.line_no + 1
            rejection = rejection_record(
                rel, tail, line_no, current.byte_offset,
                owner[0] if isinstance(owner, tuple) else None, now,
                f"line {line_no}: incomplete (no newline) when its retired queue file was deleted",
            )  # fmt: skip
            with self._ledger.transaction():
                write_rejections(self.state_dir, [rejection], st)
                self._ledger.set_queue_file(
                    rel, current.inode, size, current.line_no + 1, current.retired_at
                )
        (self.state_dir / rel).unlink(missing_ok=True)
        self._ledger.forget_queue_file(rel)
        log.info("queue_retired_deleted", path=rel)
