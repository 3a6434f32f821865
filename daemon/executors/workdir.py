"""Entering a job's working directory as its user (standard library only: the wrapper uses it).

A job starts in the directory its submitter named (the queue line's ``cwd``). The wrapper may
run as root, and root may enter any directory, so the path is resolved as the job's user would
resolve it: before a name is looked up in a directory (a component, or a symlink read there),
that directory needs search permission (``x``) for ``uid`` with primary group ``gid`` and no
supplementary groups, the identity the wrapper gives the job; so is the final directory. A
symlink is read only once its directory has passed, so neither a symlink's target nor its
existence is learnt through a directory the user may not search. Each component is opened
with ``O_NOFOLLOW`` relative to the previous one and the wrapper ``fchdir``\\ s to the last,
so a symlink swapped in after the check cannot lead the job elsewhere. POSIX ACLs are not
read: a directory that only an ACL opens is refused (a clear reason, never a wider right).
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["WorkdirError", "open_workdir", "workdir_problem"]

_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_SYMLINKS = 40  # as the kernel's path walk
_NOT_DIR = (errno.ENOTDIR, errno.ELOOP)  # O_NOFOLLOW on a symlink: ELOOP, or ENOTDIR


class WorkdirError(OSError):
    """The job's user cannot start in the directory; the message says which part and why."""


def open_workdir(path: str, uid: int, gid: int) -> int:
    """A file descriptor of directory ``path``, opened as ``uid``/``gid`` may (uid 0: any).

    Raises:
        WorkdirError: not absolute, missing, not a directory, a component the user may not
            search (named, as resolved so far), or too many symlinks.
    """
    if not os.path.isabs(path):
        raise WorkdirError(f"working directory {path!r} is not an absolute path")
    pending = _components(path)  # reversed: the next name is last
    links = 0
    walk = _Walk()
    try:
        while True:
            if uid != 0 and not _may_search(os.fstat(walk.fd), uid, gid):
                raise WorkdirError(
                    f"uid {uid} cannot enter working directory {path} "
                    f"(no search permission on {walk.where})"
                )
            if not pending:
                return walk.take()
            name = pending.pop()
            if name == "..":
                walk.up()
                continue
            target = walk.enter(name, path)
            if target is None:
                continue
            links += 1
            if links > _MAX_SYMLINKS:
                raise WorkdirError(f"working directory {path}: too many levels of symbolic links")
            if target.startswith("/"):
                walk.to_root()
            pending.extend(_components(target))
    finally:
        walk.close()


class _Walk:
    """Open descriptors from ``/`` down to the directory reached so far, with their names."""

    def __init__(self) -> None:
        self._fds = [os.open("/", _FLAGS)]
        self._names: list[str] = []

    @property
    def fd(self) -> int:
        return self._fds[-1]

    @property
    def where(self) -> str:
        return "/" + "/".join(self._names)

    def enter(self, name: str, path: str) -> str | None:
        """Go down into directory ``name`` (None), or return its target if it is a symlink.

        Raises:
            WorkdirError: ``name`` is missing or neither a directory nor a symlink.
        """
        try:
            self._fds.append(os.open(name, _FLAGS, dir_fd=self.fd))
        except OSError as exc:
            target = _symlink(name, self.fd) if exc.errno in _NOT_DIR else None
            if target is None:
                raise WorkdirError(f"working directory {path}: {_reason(exc)}") from exc
            return target
        self._names.append(name)
        return None

    def up(self) -> None:
        """``..``: the parent (``/`` stays ``/``)."""
        if self._names:
            os.close(self._fds.pop())
            self._names.pop()

    def to_root(self) -> None:
        while self._names:
            self.up()

    def take(self) -> int:
        """The current directory's descriptor, now the caller's to close."""
        self._names.clear()
        return self._fds.pop()

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()


def workdir_problem(path: str, uid: int, gid: int) -> str | None:
    """Why ``uid``/``gid`` cannot start a job in ``path``; None when it can."""
    try:
        os.close(open_workdir(path, uid, gid))
    except WorkdirError as exc:
        return str(exc)
    return None


def _components(path: str) -> list[str]:
    """``path``'s names, last first, without empty ones and ``.``."""
    return [p for p in reversed(path.split("/")) if p not in ("", ".")]


def _symlink(name: str, dir_fd: int) -> str | None:
    """The target of symlink ``name`` in ``dir_fd`` (None: not a symlink)."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return None


def _reason(exc: OSError) -> str:
    if exc.errno in _NOT_DIR:
        return "not a directory"
    return exc.strerror or str(exc)


def _may_search(info: os.stat_result, uid: int, gid: int) -> bool:
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)
