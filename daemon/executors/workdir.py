"""Entering a job's working directory as its user (standard library only: the wrapper uses it).

A job starts in the directory its submitter named (the queue line's ``cwd``). The wrapper may
run as root, and root may enter any directory, so the directory is checked as the job's user:
every component of its real path needs search permission (``x``) for ``uid`` with primary group
``gid`` and no supplementary groups, the identity the wrapper gives the job. The walk opens each
component with ``O_NOFOLLOW`` relative to the previous one and the wrapper ``fchdir``\\ s to
the last, so a symlink swapped in after the check cannot lead the job elsewhere. POSIX ACLs
are not read: a directory that only an ACL opens is refused (a clear reason, never a wider
right).
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["WorkdirError", "open_workdir", "workdir_problem"]

_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class WorkdirError(OSError):
    """The job's user cannot start in the directory; the message says which part and why."""


def open_workdir(path: str, uid: int, gid: int) -> int:
    """A file descriptor of directory ``path``, opened as ``uid``/``gid`` may (uid 0: any).

    Raises:
        WorkdirError: not absolute, missing, not a directory, or a component the user may
            not search (named).
    """
    if not os.path.isabs(path):
        raise WorkdirError(f"working directory {path!r} is not an absolute path")
    parts = [p for p in os.path.realpath(path).split("/") if p]
    fd = os.open("/", _FLAGS)
    try:
        for depth in range(len(parts) + 1):
            if uid != 0 and not _may_search(os.fstat(fd), uid, gid):
                where = "/" + "/".join(parts[:depth])
                raise WorkdirError(
                    f"uid {uid} cannot enter working directory {path} "
                    f"(no search permission on {where})"
                )
            if depth == len(parts):
                return fd
            try:
                child = os.open(parts[depth], _FLAGS, dir_fd=fd)
            except OSError as exc:
                reason = (
                    "not a directory"
                    if exc.errno in (errno.ENOTDIR, errno.ELOOP)
                    else exc.strerror or str(exc)
                )
                raise WorkdirError(f"working directory {path}: {reason}") from exc
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    raise AssertionError("unreachable")  # pragma: no cover


def workdir_problem(path: str, uid: int, gid: int) -> str | None:
    """Why ``uid``/``gid`` cannot start a job in ``path``; None when it can."""
    try:
        os.close(open_workdir(path, uid, gid))
    except WorkdirError as exc:
        return str(exc)
    return None


def _may_search(info: os.stat_result, uid: int, gid: int) -> bool:
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)
