"""Ingestion: every complete new line of every queue file, exactly once.

Each pass reads a file from the byte offset stored in the ledger, handles its complete lines
(jobs, cancels, rejections), and commits the new offset in the same SQLite transaction as the
job rows. A partial last line stays for the next pass; a bad line never stops the next one.

This module is the pass over the files (which are read, which are unusable or ignored, what a
retired one becomes once read); reading one file and its lines is :mod:`daemon.queue.reader`.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import structlog

from daemon.ledger import Ledger, LedgerError, QueueFileRecord
from daemon.queue.compaction import Compactor
from daemon.queue.files import (
    QUEUE_NAME,
    RETIRED_DIR,
    SPOOL_DIR,
    QueueError,
    spool_name_problem,
)
from daemon.queue.reader import FileReader, IngestResult
from daemon.queue.reasons import over_limit_record
from daemon.queue.rejected import write_rejections
from daemon.queue.spool import list_spool
from daemon.settings import Settings
from policies.footprint import DEFAULT_GPU_CATALOG, GpuCatalog

__all__ = ["Queue"]

log = structlog.get_logger(__name__)


class Queue:
    """The queue files of one state dir, ingested into ``ledger``; each file read by
    :attr:`reader`."""

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
        private: bool = False,
        catalog: GpuCatalog = DEFAULT_GPU_CATALOG,
    ) -> None:
        self.state_dir = state_dir
        self._private = private
        self._max_files_per_user = max_files_per_user
        self._over: dict[int, int] = {}  # uid -> spool files left unread, as last told
        self._ledger = ledger
        self._compact_min_bytes = compact_min_bytes
        self._compactor = Compactor(state_dir, ledger, retired_grace_s)
        self.reader = FileReader(state_dir, ledger, max_line_bytes=max_line_bytes,
                                 known_regions=known_regions, catalog=catalog)  # fmt: skip
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
            private=settings.ledger.private,
            catalog=settings.catalog.gpu_catalog(),
        )

    @property
    def path(self) -> Path:
        """The main queue file."""
        return self.state_dir / QUEUE_NAME

    def prepare(self) -> None:
        """Create the state dir layout: ``queue.jsonl`` (0644, or 0600 when ``private``:
        ``[ledger] private = true``, whose ledger hides the argv and cwd its lines hold),
        ``queue.d`` (1733, sticky), ``queue.retired`` (0700). Existing files keep their owner
        and mode (``carbond doctor`` names a ``queue.jsonl`` others can read then).

        Raises:
            QueueError: the state dir cannot be written.
        """
        try:
            if not self.state_dir.exists():
                self.state_dir.mkdir(parents=True, mode=0o755)
                os.chmod(self.state_dir, 0o755)  # whatever the umask: see daemon.statedir
            mode = 0o600 if self._private else 0o644
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
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
        self.reader.forget(there | {rel for rel, r in records.items() if r.retired_at is not None})
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
            result, finished = self.reader.read(rel, record, fd, st, now)
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
            log.error(event, path=rel, **fields)
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
