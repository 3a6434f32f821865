"""The queue files' writer side and shared pieces: names, appending whole lines under
``flock``, attribution of a file's lines to its owner. The rejected-lines file is
:mod:`daemon.queue.rejected`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import re
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.errors import DaemonError, UsageError
from daemon.queue.file_verdict import file_verdict

__all__ = [
    "QUEUE_NAME",
    "REJECTED_NAME",
    "RETIRED_DIR",
    "SPOOL_DIR",
    "MissingStateDirError",
    "OwnerUnknown",
    "QueueError",
    "append_line",
    "append_submission",
    "attribution",
    "new_job_id",
    "readable_by_others",
    "spool_name_problem",
    "state_dir_owner",
    "submit_target",
    "write_whole_line",
]

QUEUE_NAME = "queue.jsonl"
SPOOL_DIR = "queue.d"
RETIRED_DIR = "queue.retired"
REJECTED_NAME = "rejected.jsonl"
_OTHERS_READ = stat.S_IRGRP | stat.S_IROTH
_SPOOL_NAME = re.compile(r"^(\d{1,10})(?:\.[0-9a-f]{1,32})?\.jsonl$")
FALLBACK_NAMES = 16  # fixed names after <uid>.jsonl: another user must plant them all


class QueueError(DaemonError):
    """A queue file cannot be written or read (names the file)."""


class MissingStateDirError(QueueError, UsageError):
    """The state dir to append to does not exist (a wrong ``--state-dir`` or ``state_dir``),
    or has no ``queue.d`` for the caller's spool file yet (no daemon set it up): bad input
    (exit 2), as a state dir without a ledger is to the commands that read it."""


def new_job_id() -> str:
    """A fresh job id: ``j`` and 12 hex digits."""
    return "j" + uuid.uuid4().hex[:12]


def submit_target(state_dir: Path, uid: int) -> Path:
    """Where ``uid``'s ``carbond submit`` appends: ``queue.jsonl`` when ``uid`` owns it and
    could vouch for its lines (not writable by others, one link: :func:`attribution`), or owns
    the state dir and it does not exist yet, else its spool file ``queue.d/<uid>.jsonl``.

    Anyone may create files in ``queue.d``, so that name may be taken by another user (a file
    or a symlink they own): then a fallback name of theirs, the same each time
    (:func:`_spool_target`; a user cannot list the 1733 ``queue.d`` to find one).

    Raises:
        MissingStateDirError: the state dir does not exist.
    """
    main = state_dir / QUEUE_NAME
    owner = state_dir_owner(state_dir)
    try:
        st = os.stat(main, follow_symlinks=False)
    except FileNotFoundError:
        if owner == uid:
            return main
    else:
        if st.st_uid == uid and file_verdict(st) is None:
            return main
    return _spool_target(state_dir / SPOOL_DIR, uid)


def state_dir_owner(state_dir: Path) -> int:
    """The uid that owns ``state_dir``: the uid its daemon runs as (:mod:`daemon.statedir`
    refuses a state dir of another uid).

    Raises:
        MissingStateDirError: the state dir does not exist (or cannot be looked at).
    """
    try:
        st = state_dir.stat()
    except OSError:
        st = None
    if st is None or not stat.S_ISDIR(st.st_mode):
        raise MissingStateDirError(
            f"{state_dir}: no such state directory (is the daemon set up? --state-dir)"
        )
    return st.st_uid


def _spool_target(spool: Path, uid: int) -> Path:
    """``uid``'s spool file: the first of ``<uid>.jsonl``, ``<uid>.1.jsonl`` ..
    ``<uid>.16.jsonl`` that is theirs, else the first free one (one ``lstat`` each: no
    listing), else one of theirs of another suffix, else a new, unguessable name."""
    names = [f"{uid}.jsonl", *(f"{uid}.{n}.jsonl" for n in range(1, FALLBACK_NAMES + 1))]
    free: Path | None = None
    for name in names:
        usable = _own_spool_file(spool / name, uid)
        if usable is True:
            return spool / name
        if usable is None and free is None:
            free = spool / name
    if free is not None:
        return free
    try:
        others = sorted(spool.glob(f"{uid}.*.jsonl"))  # only root, or the daemon, may list
    except OSError:
        others = []
    for path in others:
        if _SPOOL_NAME.fullmatch(path.name) and _own_spool_file(path, uid) is True:
            return path
    return _unguessable(spool.parent, uid)


def _unguessable(state_dir: Path, uid: int) -> Path:
    return state_dir / SPOOL_DIR / f"{uid}.{uuid.uuid4().hex[:12]}.jsonl"


def _own_spool_file(path: Path, uid: int) -> bool | None:
    """True: ``path`` is ``uid``'s regular, private spool file; None: it does not exist (it
    can be created); False: something else holds the name."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError:
        return False
    return _vouches(st, uid)


def readable_by_others(mode: int) -> bool:
    """Whether a queue file of ``mode`` (``st_mode``) is readable by its group or others: with
    ``[ledger] private = true`` every job queued there shows its argv and cwd, which the
    private ledger hides (``carbond submit`` notes it, ``carbond doctor`` names it). Not
    whether *every* user may read it (``S_IROTH`` alone), which decides whether a rejected
    line's text is copied into the world-readable ``rejected.jsonl``."""
    return bool(mode & _OTHERS_READ)


def _vouches(st: os.stat_result, uid: int) -> bool:
    return stat.S_ISREG(st.st_mode) and st.st_uid == uid and file_verdict(st) is None


def spool_name_problem(rel: str, owner_uid: int) -> str | None:
    """Why spool file ``rel`` (owned by ``owner_uid``) cannot be read as its owner's, or None.

    A spool file is ``queue.d/<owner uid>.jsonl`` or ``queue.d/<owner uid>.<suffix>.jsonl``;
    one named for another uid was planted by its owner to lock that user out, and is ignored.
    """
    if not rel.startswith(f"{SPOOL_DIR}/"):
        return None
    match = _SPOOL_NAME.fullmatch(rel.removeprefix(f"{SPOOL_DIR}/"))
    if match is None:
        return f"{rel} is not named <uid>.jsonl; a spool file must be named for its owner"
    if int(match.group(1)) != owner_uid:
        return (
            f"{rel} is named for uid {match.group(1)} but owned by uid {owner_uid}: ignored "
            "(a spool file must be named for its owner)"
        )
    return None


# How long a writer waits for a queue file's lock: the daemon holds it for well under a second
# to compact, but anyone who can open a file (they are 0644) can hold it for ever.
LOCK_WAIT_S = 10.0
_LOCK_POLL_S = 0.05


def append_line(
    path: Path,
    record: dict[str, Any],
    max_line_bytes: int = 65_536,
    *,
    uid: int | None = None,
    lock_wait_s: float = LOCK_WAIT_S,
    create_mode: int = 0o644,
) -> None:
    """Append ``record`` as one JSON line to ``path`` under ``flock``, then fsync.

    The line always starts on a fresh line (a newline is written first when the file ends
    with an unfinished line someone left), and a write that fails part-way (disk full) is cut
    back off, or, if another writer appended meanwhile, ended with a newline: a later line can
    never merge into it. If compaction renamed the file while we waited for the lock, the line
    goes to the new file. With ``uid``, the file must be that user's own private regular file;
    with another ``uid`` than the caller's (root appending to a user's file) it must exist
    already: one created here would be the caller's, left empty in that user's name. The lock
    is waited for at most ``lock_wait_s``. A file created here gets ``create_mode`` (less
    the umask); an existing file's mode is left as it is.

    Raises:
        QueueError: the line is too long, the file cannot be written (or is not ``uid``'s), or
            another process held its lock for ``lock_wait_s``.
    """
    data = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    if len(data) > max_line_bytes:
        raise QueueError(f"{path}: line of {len(data)} bytes exceeds {max_line_bytes}")
    flags = os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    others = uid is not None and uid != os.geteuid()
    if not others:
        flags |= os.O_CREAT
    for _ in range(20):
        try:
            fd = os.open(path, flags, create_mode)
        except FileNotFoundError as exc:
            if others:
                raise QueueError(f"{path}: no longer exists (removed by its owner?)") from exc
            raise QueueError(f"{path}: cannot open the queue for appending: {exc}") from exc
        except OSError as exc:
            raise QueueError(f"{path}: cannot open the queue for appending: {exc}") from exc
        try:
            st = os.fstat(fd)
            if uid is not None and not _vouches(st, uid):
                raise _NotYoursError(f"{path}: not a private queue file of uid {uid}")
            if not stat.S_ISREG(st.st_mode):
                raise QueueError(f"{path}: not a regular file")
            _lock(fd, path, lock_wait_s)
            try:
                current = os.stat(path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                continue
            if current != os.fstat(fd).st_ino:
                continue  # compacted while we waited: append to the new file
            write_whole_line(fd, data)
            return
        except OSError as exc:
            raise QueueError(f"{path}: cannot append: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)
    raise QueueError(f"{path}: the queue file keeps being replaced; try again")


def _lock(fd: int, path: Path, wait_s: float) -> None:
    """``flock`` ``fd`` exclusively, waiting at most ``wait_s``.

    Raises:
        QueueError: another process held the lock all that time.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise QueueError(
                    f"{path}: another process has held the file's lock for {wait_s:g} s (the "
                    "daemon holds it for well under a second to compact it); try again"
                ) from None
            time.sleep(_LOCK_POLL_S)


class _NotYoursError(QueueError):
    """The file at a submit target is not the submitter's own (planted by someone else)."""


def write_whole_line(fd: int, data: bytes) -> None:
    """Append ``data`` (one line) to ``fd`` (locked, O_APPEND) on a fresh line, fsync'd; on
    failure leave no partial line behind that a later line could merge into."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        data = b"\n" + data  # an unfinished line before ours: end it (read as it stands then)
    written = 0
    try:
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
    except OSError:
        if written:
            with contextlib.suppress(OSError):
                if os.fstat(fd).st_size == size + written:
                    os.ftruncate(fd, size)  # only our bytes are there: take them back
                elif data[written - 1 : written] != b"\n":
                    os.write(fd, b"\n")
        raise


def append_submission(
    state_dir: Path,
    uid: int,
    record: dict[str, Any],
    max_line_bytes: int = 65_536,
    *,
    private: bool = False,
) -> Path:
    """Append ``record`` for ``uid`` (``carbond submit``/``cancel``) where it is attributed to
    them (:func:`submit_target`), going around a spool file another user planted in its place
    between the look and the open. Return the file written. A file created here is 0644, or
    0600 when ``private`` (``[ledger] private = true``: its lines are the user's own).

    Raises:
        MissingStateDirError: no state dir, or the spool file's ``queue.d`` is not there yet.
        QueueError: the line cannot be written.
    """
    mode = 0o600 if private else 0o644
    for _ in range(3):  # a name planted between the look and the open: look again
        target = submit_target(state_dir, uid)
        if target.parent.name == SPOOL_DIR and not target.parent.is_dir():
            raise MissingStateDirError(
                f"{target.parent}: no such directory: no daemon has set up {state_dir} yet "
                "(`carbond run` creates queue.d at its start, the unit's tmpfiles at install); "
                "nothing appended"
            )
        check = uid if target.parent.name == SPOOL_DIR else None
        try:
            append_line(target, record, max_line_bytes, uid=check, create_mode=mode)
        except _NotYoursError:
            continue
        return target
    target = _unguessable(state_dir, uid)
    append_line(target, record, max_line_bytes, uid=uid, create_mode=mode)
    return target


@dataclass(frozen=True, slots=True)
class OwnerUnknown:
    """The owner of a queue file has no passwd entry now, so the group its jobs run as is
    unknown: its lines wait, unread, and are tried again at the next pass. ``reason`` says so."""

    uid: int
    reason: str


def attribution(
    rel: str, st: os.stat_result, daemon_uid: int | None = None
) -> tuple[int, int] | str | OwnerUnknown:
    """The (uid, gid) the lines of ``rel`` run as (the gid: the owner's primary group, from
    passwd), why they cannot be attributed, or :class:`OwnerUnknown` when the owner's passwd
    lookup fails (an LDAP or sssd outage, a deleted user).

    The file's own group is never used instead: its owner may set it (``chgrp``, a setgid
    directory), so a failed lookup would let them pick the job's group. A daemon that is not
    root runs jobs as itself, in its own group, so a file of its own uid gets that group.
    ``daemon_uid``: the uid of the daemon that reads ``rel`` (default: this process's
    effective uid); the CLI judges a file for the daemon (the state dir's owner), not for
    its caller: a user without a passwd entry is not that daemon. For a file of
    ``daemon_uid`` in another process, only whether its lines are attributed holds: the gid
    given is this process's."""
    verdict = file_verdict(st)
    if verdict == "writable":
        return (
            f"{rel} is writable by other users, so its lines cannot be attributed to its "
            "owner; use `carbond submit` or your own queue.d/<uid>.jsonl"
        )
    if verdict == "linked":
        return f"{rel} has {st.st_nlink} hard links, so its owner cannot vouch for its lines"
    problem = spool_name_problem(rel, st.st_uid)
    if problem is not None:
        return problem
    try:
        return st.st_uid, pwd.getpwuid(st.st_uid).pw_gid
    except KeyError:
        pass
    if st.st_uid == (os.geteuid() if daemon_uid is None else daemon_uid) != 0:
        return st.st_uid, os.getegid()
    return OwnerUnknown(
        st.st_uid,
        f"{rel}: no passwd entry for its owner uid {st.st_uid} (a user database outage?), so "
        "its jobs' group is unknown; its lines wait and are read once the lookup succeeds",
    )
