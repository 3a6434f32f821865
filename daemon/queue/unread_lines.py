"""The lines of a queue file that the daemon has not read yet, as it will treat them: a job's
line and a cancel line for it after that (``carbond status`` and ``cancel`` of a job still
unread), every job line to come (``carbond jobs``). Each line is judged by the daemon's own
rules (:class:`LineRules`: its parser, :func:`daemon.queue.line.parse_line`, and its line
length): a line it will reject holds no job."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from daemon.queue.files import QueueError
from daemon.queue.id_filter import may_name
from daemon.queue.job_request import CancelRequest, JobRequest
from daemon.queue.line import parse_line
from daemon.queue.raw_line import line_object
from daemon.queue.reasons import InvalidLineError
from policies.footprint import DEFAULT_GPU_CATALOG, GpuCatalog

__all__ = [
    "LineRules",
    "RejectedLine",
    "UnreadFrom",
    "UnreadJobLine",
    "UnreadLines",
    "UnreadStart",
    "has_job_line",
    "rejected_job_line",
    "unread_files_job_line",
    "unread_files_job_lines",
    "unread_job_lines",
    "unread_lines",
]


@dataclass(frozen=True, slots=True)
class UnreadStart:
    """Where the daemon goes on reading a file: ``offset`` in bytes, ``line_no`` lines before
    it, ``skipping``: inside an over-long line it rejected (the rest, to its newline, is no
    line of its own)."""

    offset: int = 0
    line_no: int = 0
    skipping: bool = False


UnreadFrom = Callable[[int, os.stat_result], UnreadStart]


@dataclass(frozen=True, slots=True)
class LineRules:
    """What the daemon accepts of a line (:class:`daemon.queue.reader.FileReader`'s checks):
    at most ``max_line_bytes`` with its newline, every region it names among
    ``known_regions`` (None: any), and whatever else :func:`parse_line` checks; and when it
    reads it: a pass reads at most ``max_files_per_user`` of one owner's spool files
    (:mod:`daemon.queue.spool`)."""

    max_line_bytes: int = 65_536
    known_regions: tuple[str, ...] | None = None
    max_files_per_user: int = 32
    catalog: GpuCatalog = DEFAULT_GPU_CATALOG  # the site's: a line's gpu_types

    def accept(self, raw: bytes, now: datetime) -> JobRequest | CancelRequest | None:
        """``raw`` (a line without its newline) as the daemon will read it at ``now``; None
        when it will reject it."""
        judged = self.judge(raw, now)
        return None if isinstance(judged, str) else judged

    def judge(self, raw: bytes, now: datetime) -> JobRequest | CancelRequest | str:
        """:meth:`accept`, with why the daemon will reject ``raw`` in place of None: its
        rejection reason, less the ``line N:`` it starts with."""
        if len(raw) + 1 > self.max_line_bytes:
            return f"longer than {self.max_line_bytes} bytes"
        try:
            return parse_line(raw, now, self.known_regions, self.catalog)
        except InvalidLineError as exc:
            return str(exc)


@dataclass(frozen=True, slots=True)
class UnreadLines:
    """What the unread part of a queue file holds for one job id."""

    job: bool  # its job line
    cancel: bool  # a cancel line for it after its job line (the daemon reads both in order)
    # False: the job's line is the file's last and has no newline yet: the daemon reads it once
    # it ends (a line appended by `carbond submit` or `cancel` ends it first)
    ended: bool = True


@dataclass(frozen=True, slots=True)
class UnreadJobLine:
    """A job line the daemon will accept when it reads it: the request (``job_id`` None: the
    daemon gives it a new id then), its line number in the file, whether a cancel line for
    its id follows it there, and whether it has its newline (False: the file's last line,
    unfinished, which the daemon reads once it ends: :attr:`UnreadLines.ended`)."""

    request: JobRequest
    line_no: int
    cancel: bool
    ended: bool = True


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """A line the daemon has not read yet and will reject: its line number in the file and
    why (the daemon's reason, less its ``line N:``)."""

    line_no: int
    reason: str


def has_job_line(
    path: Path,
    job_id: str,
    now: datetime,
    unread_from: UnreadFrom | None = None,
    rules: LineRules = LineRules(),
) -> bool:
    """Whether the queue file ``path`` holds a job line with ``job_id`` that the daemon has not
    read and will accept (:func:`unread_lines`).

    Raises:
        QueueError: the file exists but cannot be read.
    """
    return unread_lines(path, job_id, now, unread_from, rules).job


def unread_lines(
    path: Path,
    job_id: str,
    now: datetime,
    unread_from: UnreadFrom | None = None,
    rules: LineRules = LineRules(),
) -> UnreadLines:
    """The lines for ``job_id`` in the queue file ``path`` that the daemon has not read and
    will accept (``rules``, at ``now``): from where ``unread_from(fd, stat)`` says for the open
    file (the ingest's own rule, :func:`daemon.queue.resume.resume`; None: from its start).

    Raises:
        QueueError: the file exists but cannot be read.
    """
    names = may_name(job_id)
    job = False
    for _, raw in _unread_raw(path, unread_from):
        if not names(raw):  # most lines: not parsed
            continue
        parsed = rules.accept(raw.rstrip(b"\r\n"), now)
        if not job:
            job = isinstance(parsed, JobRequest) and parsed.job_id == job_id
            if job and not raw.endswith(b"\n"):  # the last line: nothing follows it
                return UnreadLines(job=True, cancel=False, ended=False)
        elif (
            isinstance(parsed, CancelRequest)
            and parsed.job_id == job_id
            and raw.endswith(b"\n")  # unfinished, the daemon has not read it: no cancel yet
        ):
            return UnreadLines(job=True, cancel=True)
    return UnreadLines(job=job, cancel=False)


def rejected_job_line(
    path: Path,
    job_id: str,
    now: datetime,
    unread_from: UnreadFrom | None = None,
    rules: LineRules = LineRules(),
) -> RejectedLine | None:
    """The first line of ``path`` the daemon has not read that asks for ``job_id`` (its
    ``id``) and that it will reject (``rules``, at ``now``), with why; None: there is none.

    Raises:
        QueueError: the file exists but cannot be read.
    """
    names = may_name(job_id)
    for line_no, raw in _unread_raw(path, unread_from):
        if not names(raw):  # most lines: not parsed
            continue
        line = raw.rstrip(b"\r\n")
        if _claimed_id(line) != job_id:
            continue
        judged = rules.judge(line, now)
        if isinstance(judged, str):
            return RejectedLine(line_no, judged)
    return None


def _claimed_id(line: bytes) -> str | None:
    """The ``id`` a line asks for, if it is a JSON object that names one, read as the daemon
    reads it (:func:`~daemon.queue.raw_line.line_object`: UTF-8 only)."""
    record = line_object(line)
    value = record.get("id") if record is not None else None
    return value if isinstance(value, str) else None


def unread_job_lines(
    path: Path,
    now: datetime,
    unread_from: UnreadFrom | None = None,
    rules: LineRules = LineRules(),
) -> list[UnreadJobLine]:
    """Every job line of the queue file ``path`` that the daemon has not read and will accept
    (``rules``, at ``now``; :func:`unread_lines`' part of the file), in order: every one
    without an id (the daemon gives each a new id when it reads it) and the first with each id
    (a later one is a duplicate it drops), each with whether a cancel line for its id follows
    it there (``carbond jobs`` lists them as submitted).

    Raises:
        QueueError: the file exists but cannot be read.
    """
    owner = 0  # one file: every line is its owner's, whoever that is
    return [line for _, _, line in unread_files_job_lines([(path, owner, unread_from)], now, rules)]


def unread_files_job_lines(
    files: Sequence[tuple[Path, int, UnreadFrom | None]],
    now: datetime,
    rules: LineRules = LineRules(),
    later: Sequence[Sequence[tuple[Path, int, UnreadFrom | None]]] = (),
) -> list[tuple[Path, int, UnreadJobLine]]:
    """:func:`unread_job_lines` of several queue files, each with its owner's uid and where
    the daemon goes on reading it, in the order the daemon reads them (``queue.jsonl``, then
    the spool files by name: :meth:`daemon.queue.ingest.Queue.ingest`), as it takes their
    lines: the first job line with an id, in any of them, is the job; a later one with that id
    it drops (the same owner's) or rejects (another user's). A job's cancel is one that
    follows its line, in its file or a later one of its owner or of root (the daemon rejects
    another user's). Each with its file and owner. ``later``: groups of files the daemon
    reads after all of these, each in turn: those a later pass reads (over
    ``queue.max_files_per_user``: :func:`daemon.queue.spool.spool_passes`), those it holds
    unread for now (their owner's passwd lookup fails), read once it may.

    Raises:
        QueueError: a file exists but cannot be read.
    """
    return _take([files, *later], now, rules, None, None)


def unread_files_job_line(
    files: Sequence[tuple[Path, int, UnreadFrom | None]],
    job_id: str,
    now: datetime,
    rules: LineRules = LineRules(),
    rejected: dict[Path, RejectedLine] | None = None,
    later: Sequence[Sequence[tuple[Path, int, UnreadFrom | None]]] = (),
) -> tuple[Path, int, UnreadJobLine] | None:
    """The line of ``files`` that the daemon will take as ``job_id``'s job, as
    :func:`unread_files_job_lines` takes them, with its cancel; None: none it will accept.
    Only the lines that may name ``job_id`` (:func:`~daemon.queue.id_filter.may_name`) are
    parsed: the others can neither be its job, nor take its id, nor cancel it, and with
    100,000 unread lines parsing each costs seconds (``carbond status``, ``cancel``,
    ``submit --id``).

    ``rejected``, when given, gets in the same pass each file's first line asking for
    ``job_id`` that the daemon will reject, as :func:`rejected_job_line` finds it (so
    ``carbond status`` and ``cancel`` read the files once, not once more for that).

    Raises:
        QueueError: a file exists but cannot be read.
    """
    doomed: _Doomed | None = None
    if rejected is not None:
        first = rejected

        def note(path: Path, line_no: int, line: bytes, reason: str) -> None:
            if path not in first and _claimed_id(line) == job_id:
                first[path] = RejectedLine(line_no, reason)

        doomed = note
    found = _take([files, *later], now, rules, may_name(job_id), doomed)
    return next((entry for entry in found if entry[2].request.job_id == job_id), None)


_Doomed = Callable[[Path, int, bytes, str], None]  # (file, line no., line, why rejected)


def _take(
    groups: Sequence[Sequence[tuple[Path, int, UnreadFrom | None]]],
    now: datetime,
    rules: LineRules,
    names: Callable[[bytes], bool] | None,
    doomed: _Doomed | None,
) -> list[tuple[Path, int, UnreadJobLine]]:
    """:func:`unread_files_job_lines` of each group of files in turn (the files read now,
    then those read later), parsing only the lines ``names`` keeps (None: all; the others are
    counted, never taken); each line the daemon will reject is handed to ``doomed``, when
    given."""
    taken = _Taken()
    for files in groups:
        _take_files(files, now, rules, names, doomed, taken)
    return taken.found


def _take_files(
    files: Sequence[tuple[Path, int, UnreadFrom | None]],
    now: datetime,
    rules: LineRules,
    names: Callable[[bytes], bool] | None,
    doomed: _Doomed | None,
    taken: _Taken,
) -> None:
    unfinished: list[tuple[Path, int, UnreadJobLine]] = []  # read once they end: after these
    for path, owner, unread_from in files:
        for line_no, raw in _unread_raw(path, unread_from):
            if names is not None and not names(raw):
                continue
            text = raw.rstrip(b"\r\n")
            parsed = rules.judge(text, now)
            if isinstance(parsed, str):
                if doomed is not None:
                    doomed(path, line_no, text, parsed)
            elif not raw.endswith(b"\n"):  # a file's last line: the daemon waits for its end
                if isinstance(parsed, JobRequest):
                    unfinished.append((path, owner, UnreadJobLine(parsed, line_no, False, False)))
            elif isinstance(parsed, JobRequest):
                taken.job(path, owner, UnreadJobLine(parsed, line_no, cancel=False))
            elif isinstance(parsed, CancelRequest):
                taken.cancel(parsed.job_id, owner)
    for path, owner, line in unfinished:  # once ended: an id taken by then is no job
        taken.job(path, owner, line)


@dataclass(slots=True)
class _Taken:
    """The job lines the daemon takes, in the order it reads them."""

    found: list[tuple[Path, int, UnreadJobLine]] = field(default_factory=list)
    at: dict[str, int] = field(default_factory=dict)  # an id's job line: the one it takes

    def job(self, path: Path, owner: int, line: UnreadJobLine) -> None:
        """A job line of ``owner``'s file ``path``: taken, unless its id is (a duplicate, or
        another user's id: either way no job)."""
        job_id = line.request.job_id
        if job_id in self.at:
            return
        if job_id is not None:
            self.at[job_id] = len(self.found)
        self.found.append((path, owner, line))

    def cancel(self, job_id: str, owner: int) -> None:
        """A cancel line of ``owner``'s file: it cancels a job taken before it, of ``owner``
        or by root (the daemon rejects another user's, and one of a job it has not read)."""
        if job_id not in self.at:
            return
        path, whose, line = self.found[self.at[job_id]]
        if owner in (whose, 0):
            self.found[self.at[job_id]] = (path, whose, replace(line, cancel=True))


def _unread_raw(path: Path, unread_from: UnreadFrom | None) -> Iterator[tuple[int, bytes]]:
    """The raw lines of ``path`` from where the daemon goes on reading, each with its line
    number as the daemon counts them (none: no such file, a symlink or not a regular file,
    which the daemon never reads).

    Raises:
        QueueError: the file exists but cannot be read.
    """
    try:  # never through a link, never blocking on a FIFO: queue.d is everyone's to swap in
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink: the daemon never reads its lines
            return
        raise QueueError(f"{path}: cannot read: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO, ...: no job line the daemon reads
        os.close(fd)
        return
    with os.fdopen(fd, "rb") as handle:
        start = UnreadStart()
        if unread_from is not None:
            start = unread_from(handle.fileno(), os.fstat(handle.fileno()))
            handle.seek(start.offset)
        line_no, skipping = start.line_no, start.skipping
        for raw in handle:
            if skipping:  # the rest of an over-long line, rejected already
                skipping = False
                continue
            line_no += 1
            if raw.strip():
                yield line_no, raw
