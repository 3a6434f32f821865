"""A job submitted that the daemon has not read yet (it is down, or has not ingested the line
yet): its line is still past the ledger's ingestion offset in its queue file. ``carbond
cancel``, ``status``, ``jobs`` and ``submit`` look for it in the caller's own queue file when
the ledger has no such id, and in the main ``queue.jsonl`` where they may read it (the daemon
reads it first); root's in every queue file the daemon reads."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from daemon.ledger import Ledger, QueueFileRecord
from daemon.queue import (
    QUEUE_NAME,
    SPOOL_DIR,
    QueueError,
    submit_target,
)
from daemon.queue.files import OwnerUnknown, attribution, state_dir_owner
from daemon.queue.job_request import JobRequest
from daemon.queue.resume import resume
from daemon.queue.spool import spool_passes
from daemon.queue.unread_lines import (
    LineRules,
    RejectedLine,
    UnreadFrom,
    UnreadJobLine,
    UnreadStart,
    rejected_job_line,
    unread_files_job_line,
    unread_files_job_lines,
)
from daemon.settings import Settings
from daemon.statedir import LEDGER_NAME

__all__ = [
    "UnreadJob",
    "UnreadLookup",
    "line_rules",
    "unread_job_taken",
    "unread_jobs",
    "unread_lookup",
]


def line_rules(settings: Settings) -> LineRules:
    """The daemon's rules for a line under ``settings`` (as :meth:`Queue.from_settings
    <daemon.queue.ingest.Queue.from_settings>` reads them): what it will accept."""
    known = tuple(region.name for region in settings.regions) or None
    return LineRules(settings.queue.max_line_bytes, known, settings.queue.max_files_per_user,
                     settings.catalog.gpu_catalog())  # fmt: skip


@dataclass(frozen=True, slots=True)
class UnreadJob:
    """A job line the daemon has not read yet, as ``carbond status ID`` finds one
    (``request.job_id`` None: the daemon gives it a new id when it reads it)."""

    request: JobRequest
    queue_file: Path
    line_no: int  # its line in ``queue_file``, as the daemon counts them
    uid: int  # the file's owner: whose job it is
    cancel: bool  # a cancel line for it follows in that file
    ended: bool = True  # False: its line has no newline yet (UnreadLines.ended)
    # why the daemon holds its file unread for now (its owner's passwd lookup fails: it reads
    # it once that succeeds, after the others; its owner has more spool files than a pass
    # reads: a later pass reads it); None: read at the next pass
    held: str | None = None


def unread_jobs(state_dir: Path, uid: int, *, now: datetime, rules: LineRules) -> list[UnreadJob]:
    """The job lines the daemon has not read yet, and will accept (``rules``, at ``now``),
    where ``carbond status`` looks for one: the caller's own queue file, root's every queue
    file the daemon reads; in the order it reads them, also those without an id (the daemon
    gives each a new one when it reads it), an id once: the first line with it, in any of
    these files (it drops or rejects a later one; another user's: the main ``queue.jsonl``
    where the caller may read it, which the daemon reads first). Lines the daemon will
    reject are not jobs: ``--state rejected`` lists them once read.

    Raises:
        QueueError: the state dir or a file cannot be read.
        LedgerError: the ledger cannot be read.
    """
    taken = _taken_jobs(state_dir, uid, now, rules)
    return [job for job in taken if uid in (0, job.uid)]


def unread_job_taken(
    state_dir: Path, job_id: str, uid: int, *, now: datetime, rules: LineRules
) -> UnreadJob | None:
    """The line the daemon will take as ``job_id``'s job, as :func:`unread_jobs` takes them
    (``carbond jobs``): ``carbond status`` shows it and ``carbond cancel`` follows it, so all
    three agree on which it is (root: the first file the daemon reads that holds it, when
    several users' do; its cancel counted as the daemon counts it, also from a later file of
    its owner's). For another user, also a line of the main ``queue.jsonl`` where they may
    read it: another user's there takes the id before theirs. None: no unread line it will
    accept has that id.

    Raises:
        QueueError: the state dir or a file cannot be read.
        LedgerError: the ledger cannot be read.
    """
    reads = _reads(state_dir, uid, _offsets(state_dir), rules)
    found = unread_files_job_line(reads.groups[0], job_id, now, rules, later=reads.groups[1:])
    return None if found is None else reads.job(*found)


def _taken_jobs(state_dir: Path, uid: int, now: datetime, rules: LineRules) -> list[UnreadJob]:
    """:func:`unread_jobs`, with those of another user's file read before the caller's."""
    reads = _reads(state_dir, uid, _offsets(state_dir), rules)
    found = unread_files_job_lines(reads.groups[0], now, rules, later=reads.groups[1:])
    return [reads.job(*entry) for entry in found]


_File = tuple[Path, int, UnreadFrom]  # a queue file, its owner, where the daemon goes on


@dataclass(frozen=True, slots=True)
class _Reads:
    """The queue files the daemon reads, each with its owner and where it goes on reading it,
    in groups it reads one after the other: those of its next pass, of each later pass (a
    pass reads at most ``queue.max_files_per_user`` of an owner's spool files), then those
    it holds unread for now (their owner's passwd lookup fails), read once it may, pass by
    pass alike; ``why``: why, for each file it does not read at its next pass."""

    groups: list[list[_File]]
    why: dict[Path, str]

    def job(self, path: Path, owner: int, line: UnreadJobLine) -> UnreadJob:
        """``line`` of ``owner``'s file ``path`` as an :class:`UnreadJob`."""
        return UnreadJob(line.request, path, line.line_no, owner, line.cancel, line.ended,
                         self.why.get(path))  # fmt: skip

    @property
    def files(self) -> list[_File]:
        """Every file, in the order the daemon reads them."""
        return [file for group in self.groups for file in group]


def _reads(
    state_dir: Path, uid: int, offsets: dict[str, QueueFileRecord], rules: LineRules
) -> _Reads:
    """The queue files whose unread lines decide ``uid``'s unread jobs, in the order the
    daemon reads them (one id is one job, whichever file holds it first): root's every file;
    another user's own file, after the main ``queue.jsonl`` where they may read it
    (``offsets``: the ledger's). A spool file a later pass reads (its owner has more than
    ``rules.max_files_per_user``: :func:`~daemon.queue.spool.spool_passes`) comes after the
    files of the passes before; a file whose owner's passwd lookup fails is held: the daemon
    reads nothing of it meanwhile (:meth:`daemon.queue.reader.FileReader.read`), so the
    others' lines take their ids first. Whether it holds one is judged for the daemon, which
    runs as the state dir's owner (:func:`~daemon.queue.files.state_dir_owner`), not for
    ``uid``: a user without a passwd entry sees their own file held, as a root daemon holds
    it."""
    daemon = state_dir_owner(state_dir)
    if uid == 0:
        files = _read_files(state_dir, daemon)
    else:
        target = submit_target(state_dir, uid)
        files = [*_readable_main(state_dir, target, daemon),
                 (target, uid, _held(state_dir, target, daemon))]  # fmt: skip
    passes = spool_passes(state_dir, offsets, rules.max_files_per_user, rules.max_line_bytes)
    last = max((n for n in passes.first.values() if n is not None), default=1) + 1
    groups: dict[tuple[bool, int], list[_File]] = {}
    why: dict[Path, str] = {}
    for path, owner, unknown in files:  # unknown: why its owner's lookup holds it
        number = passes.first.get(str(path.relative_to(state_dir)), 1)
        key = (unknown is not None, last if number is None else number)
        groups.setdefault(key, []).append((path, owner, _unread_from(offsets, state_dir, path)))
        if unknown is not None:
            why[path] = unknown
        elif number != 1:
            why[path] = _over_why(
                number, owner, passes.files.get(owner, 0), rules.max_files_per_user
            )
    return _Reads([groups[key] for key in sorted(groups)] or [[]], why)


def _over_why(number: int | None, owner: int, files: int, limit: int) -> str:
    """``held: over queue.max_files_per_user (...)``: why the daemon reads a spool file of
    ``owner``, who has ``files`` there, at its pass ``number`` (None: at none meanwhile)."""
    why = (f"held: over queue.max_files_per_user ({limit}): queue.d holds {files} files of uid "
           f"{owner}, a pass reads {limit} of them, those with lines not read yet first, "
           "<uid>.jsonl first of these, then by name; ")  # fmt: skip
    if number is None:
        return why + ("no pass reads this one while those read before it keep an unfinished "
                      "last line or a name not their owner's, and so fill every pass")  # fmt: skip
    return why + f"the daemon reads this one at its pass {number} from now, after the others"


def _held(state_dir: Path, path: Path, daemon: int) -> str | None:
    """Why the daemon (uid ``daemon``) holds ``path`` unread for now (see :func:`_held_why`);
    None: it does not (or it is not there)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return _held_why(attribution(str(path.relative_to(state_dir)), st, daemon))


def _held_why(owner: tuple[int, int] | str | OwnerUnknown) -> str | None:
    """``held: owner unknown (...)`` for a file whose owner's passwd lookup fails; else None."""
    if not isinstance(owner, OwnerUnknown):
        return None
    return (f"held: owner unknown (uid {owner.uid} has no passwd entry now: the daemon reads "
            "this file once the lookup succeeds)")  # fmt: skip


def _readable_main(state_dir: Path, target: Path, daemon: int) -> list[tuple[Path, int, None]]:
    """The main ``queue.jsonl`` with its owner, when it is not ``target`` (the caller's own
    file), the daemon reads it (the first file it reads) and the caller may: its lines take
    an id before theirs. Else none (what the caller cannot read, it cannot judge); none too
    while its owner's passwd lookup fails: the daemon holds its lines, unread, and reads the
    caller's meanwhile (:meth:`daemon.queue.reader.FileReader.read`), so theirs take their
    ids first."""
    path = state_dir / QUEUE_NAME
    if path == target:
        return []
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return []
    if not stat.S_ISREG(st.st_mode) or not isinstance(attribution(QUEUE_NAME, st, daemon), tuple):
        return []  # the daemon never reads its lines, or not until its owner is known
    return [(path, st.st_uid, None)] if os.access(path, os.R_OK) else []


@dataclass(frozen=True, slots=True)
class UnreadLookup:
    """What the unread queue lines hold for one id the ledger does not have: the line the
    daemon will take as its job (:func:`unread_job_taken`), and else why a line asking for
    it is no job: ``its line FILE:LINE, not read yet, will be rejected by the daemon
    (REASON)`` (``carbond cancel`` and ``status`` say it alike; None: no such line)."""

    job: UnreadJob | None
    doomed: str | None


def unread_lookup(
    state_dir: Path, job_id: str, uid: int, *, now: datetime, rules: LineRules
) -> UnreadLookup:
    """``job_id``'s unread job line, as :func:`unread_job_taken` finds it, and the first
    unread line asking for it that the daemon will reject (``rules``, at ``now``), with why:
    in the caller's own queue file, root's also in every queue file the daemon reads, in
    that order. One pass over the files answers both (``carbond status`` and ``cancel`` of
    an id the ledger does not have: until 2026-12-07 they read the files twice).

    Raises:
        QueueError: the state dir or a file cannot be read.
        LedgerError: the ledger cannot be read.
    """
    offsets = _offsets(state_dir)
    reads = _reads(state_dir, uid, offsets, rules)
    rejected: dict[Path, RejectedLine] = {}
    found = unread_files_job_line(reads.groups[0], job_id, now, rules, rejected,
                                  reads.groups[1:])  # fmt: skip
    job = None if found is None else reads.job(*found)
    read = [path for path, _, _ in reads.files]
    files = [submit_target(state_dir, uid)]
    if uid == 0:
        files += [path for path in read if path not in files]
    for path in files:
        unread_from = _unread_from(offsets, state_dir, path)
        line = (
            rejected.get(path)
            if path in read
            else rejected_job_line(path, job_id, now, unread_from, rules)
        )  # root's own file, when the daemon does not read it: looked at alone
        if line is not None:
            return UnreadLookup(job, f"its line {path}:{line.line_no}, not read yet, will be "
                                     f"rejected by the daemon ({line.reason})")  # fmt: skip
    return UnreadLookup(job, None)


def _read_files(state_dir: Path, daemon: int) -> list[tuple[Path, int, str | None]]:
    """Every queue file the daemon (uid ``daemon``) reads (``queue.jsonl`` and the spool files
    it attributes to their owners), each with its owner's uid and why it holds it unread for
    now, if it does (:func:`_held_why`).

    Raises:
        QueueError: the state dir or one of the files cannot be read.
    """
    names = [QUEUE_NAME]
    spool = state_dir / SPOOL_DIR
    try:
        names += sorted(f"{SPOOL_DIR}/{p.name}" for p in spool.glob("*.jsonl"))
    except OSError as exc:
        raise QueueError(f"{spool}: cannot list: {exc.strerror}") from exc
    found = []
    for rel in names:
        path = state_dir / rel
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise QueueError(f"{path}: cannot read: {exc.strerror}") from exc
        owner = attribution(rel, st, daemon)
        if not stat.S_ISREG(st.st_mode) or isinstance(owner, str):
            continue  # the daemon never reads its lines: not a job
        found.append((path, st.st_uid, _held_why(owner)))
    return found


def _offsets(state_dir: Path) -> dict[str, QueueFileRecord]:
    """The ledger's read offsets per queue file (none: no daemon has started, nothing read)."""
    ledger_path = state_dir / LEDGER_NAME
    if not ledger_path.is_file():
        return {}
    with Ledger.open_readonly(ledger_path) as ledger:
        return ledger.queue_files()


def _unread_from(offsets: dict[str, QueueFileRecord], state_dir: Path, path: Path) -> UnreadFrom:
    """Where the daemon goes on reading ``path`` (also past a copy of the state dir), and its
    count of the lines before that."""
    record = offsets.get(str(path.relative_to(state_dir)))

    def start(fd: int, st: os.stat_result) -> UnreadStart:
        offset = resume(fd, st, record).offset
        if record is None or offset != record.byte_offset or offset == 0:
            return UnreadStart(offset)  # read again from the start (or never read)
        return UnreadStart(offset, record.line_no, record.skipping)

    return start
