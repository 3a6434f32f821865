"""``carbond doctor``'s ``queue`` line: the main queue file (``queue.jsonl``: not a regular
file, writable by other users, hard-linked or, with ``[ledger] private = true``, readable by
other users, an unfinished last line), its backlog, the rejected lines, and users' spool files
(:mod:`.spool`).

The main queue file belongs to the state dir's owner, the daemon's uid: ``carbond run``
creates it at start, and that uid's ``carbond submit`` appends to it. One other users can
write, or one with more than one hard link, is judged by the daemon's own rules
(:func:`daemon.queue.file_verdict.file_verdict`: the daemon rejects every line of it), and its
fix is to recreate it (:func:`daemon.queue.file_verdict.recreate_fix`), never a ``chmod``: a
descriptor opened while it was writable stays writable, and lines written through it would be
read as its owner's; the other name of a linked one may be in a directory only its maker can
see."""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path
from typing import Literal

from daemon.doctor.spool import owner_name, spool_problems
from daemon.ledger import Ledger, QueueFileRecord
from daemon.queue import QUEUE_NAME, REJECTED_NAME, SPOOL_DIR
from daemon.queue.file_verdict import file_verdict, recreate_fix
from daemon.queue.files import readable_by_others
from daemon.queue.resume import resume
from daemon.settings import Settings
from daemon.statedir import LEDGER_NAME

__all__ = ["describe_queue"]

Status = Literal["pass", "fail", "skip"]


def describe_queue(settings: Settings) -> tuple[Status, str]:
    """The ``queue`` line's status and detail.

    Raises:
        OSError, DaemonError: a file cannot be read (the check fails with it).
    """
    queue = settings.state_dir / QUEUE_NAME
    try:
        st = os.lstat(queue)
    except FileNotFoundError:  # users' spool files may be there already (tmpfiles' queue.d)
        detail = f"{queue} not created yet (`carbond run` creates it)"
        if problems := _spool_problems(settings):
            return "fail", f"{detail}; " + "; ".join(problems)
        return "pass", detail
    if not stat.S_ISREG(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        return "fail", (f"{queue} is {kind} ({stat.filemode(st.st_mode)}): the daemon does "
                        "not read it; remove it and restart")  # fmt: skip
    problems = _main_file_problems(queue, st, private=settings.ledger.private)
    if st.st_size and _last_byte(queue) != b"\n":
        problems.append(f"{queue} ends with an unfinished line (left for later)")
    backlog = "backlog unknown (no ledger yet)"
    ledger_path = settings.state_dir / LEDGER_NAME
    if ledger_path.exists():
        with Ledger.open_readonly(ledger_path) as ledger:
            record = ledger.queue_files().get(QUEUE_NAME)
        backlog = f"{st.st_size - _ingested_bytes(queue, record)} byte(s) not ingested yet"
    problems += _spool_problems(settings)
    detail = f"{queue}: {st.st_size} bytes, {backlog}, {_count_rejected(settings)} rejected line(s)"
    if problems:
        return "fail", f"{detail}; " + "; ".join(problems)
    return "pass", detail


def _main_file_problems(queue: Path, st: os.stat_result, *, private: bool) -> list[str]:
    """What is wrong with ``queue`` (``st`` its ``lstat``), in the daemon's order: writable by
    other users, else more than one hard link (both: recreate it, :func:`recreate_fix`), else,
    when ``private``, readable by them (a ``chmod 600`` does)."""
    mode = stat.S_IMODE(st.st_mode)
    owner = f"owner {owner_name(st.st_uid)}, mode {mode:04o}"
    verdict = file_verdict(st)
    if verdict == "writable":
        return [
            f"{queue} is writable by other users ({owner}): the daemon rejects every line it "
            "reads from it, and a `chmod` back does not make it safe (whoever opened it "
            "meanwhile can still write lines read as its owner's): "
            + recreate_fix(queue, private=private)
        ]
    if verdict == "linked":
        return [
            f"{queue} has {st.st_nlink} hard links ({owner}): the daemon rejects every line it "
            "reads from it (its owner cannot vouch for them: another name, perhaps in a "
            "directory of another user's, may be anyone's way in to it): "
            + recreate_fix(queue, private=private)
        ]
    if private and readable_by_others(st.st_mode):
        return [
            f"{queue} is readable by other users (mode {mode:04o}), though the ledger is "
            "private: every job queued there shows its argv and cwd; "
            f"`chmod 600 {shlex.quote(str(queue))}` makes it private"
        ]
    return []


def _ingested_bytes(queue: Path, record: QueueFileRecord | None) -> int:
    """How much of ``queue`` the daemon has read, as its ingest decides (``resume``)."""
    fd = os.open(queue, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return resume(fd, os.fstat(fd), record).offset
    finally:
        os.close(fd)


def _last_byte(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, 1, size - 1) if size else b""
    finally:
        os.close(fd)


def _spool_problems(settings: Settings) -> list[str]:
    return spool_problems(settings.state_dir / SPOOL_DIR, private=settings.ledger.private)


def _count_rejected(settings: Settings) -> int:
    path = settings.state_dir / REJECTED_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(f"{path} is not a regular file")
        return sum(1 for _ in handle)
