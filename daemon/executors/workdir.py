"""Entering a job's working directory as its user (standard library only: the wrapper uses it).

A job starts in the directory its submitter named (the queue line's ``cwd``). The wrapper may
run as root, and root may enter any directory, so the path is resolved as the job's user would
resolve it: before a name is looked up in a directory (a component, or a symlink read there),
that directory needs search permission (``x``) for ``uid`` with primary group ``gid`` and no
supplementary groups, the identity the wrapper gives the job; so is the final directory. A
symlink is read only once its directory has passed, so neither a symlink's target nor its
existence is learnt through a directory the user may not search. Each component is opened
with ``O_NOFOLLOW`` relative to the previous one and the wrapper ``fchdir``\\ s to the last,
so a symlink swapped in after the check cannot lead the job elsewhere. A directory with a
POSIX access ACL is judged by its entries as the kernel judges them (owner, named user and
mask, owning and named groups and mask, other): an ACL that shuts the user out keeps them out
though the mode bits, which then show the mask, would let them in; one that lets them in does.
A symlink on a proc file system (``/proc/PID/cwd``, ``root``, ``fd/N``, ``/proc/self``) is
never followed for a user other than root: the kernel shows where such a link leads only to
whom may trace that process, a permission no mode bit tells, and ``/proc/self`` would name
the wrapper, not the job.
"""

from __future__ import annotations

import errno
import os
import stat
import struct

__all__ = ["WorkdirError", "open_workdir", "workdir_problem"]

_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_SYMLINKS = 40  # as the kernel's path walk
_NOT_DIR = (errno.ENOTDIR, errno.ELOOP)  # O_NOFOLLOW on a symlink: ELOOP, or ENOTDIR


class WorkdirError(OSError):
    """The job's user cannot start in the directory; the message says which part and why."""


class _UnreadableAclError(Exception):
    """A directory's ACL could not be read or understood."""


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
            try:
                allowed = uid == 0 or _may_search(walk.fd, uid, gid)
            except _UnreadableAclError as exc:
                raise WorkdirError(f"working directory {path}: {exc} on {walk.where}") from exc
            if not allowed:
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
            if uid != 0 and _on_procfs(walk.fd):
                raise WorkdirError(
                    f"working directory {path}: {os.path.join(walk.where, name)} is a link of "
                    "/proc: not followed for a job's user (the kernel shows where it leads "
                    "only to whom may trace that process)"
                )
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


def _on_procfs(fd: int) -> bool:
    """Whether directory ``fd`` is on a proc file system (any mount of one, by its device in
    ``/proc/self/mountinfo``; none readable: no proc mounted, so False)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            lines = mounts.read().split("\n")
    except OSError:
        return False
    dev = os.fstat(fd).st_dev
    for line in lines:
        fields, _, rest = line.partition(" - ")
        parts = fields.split(" ")
        if len(parts) > 2 and rest.split(" ")[0] == "proc":
            major, _, minor = parts[2].partition(":")
            if os.makedev(int(major), int(minor)) == dev:
                return True
    return False


def _reason(exc: OSError) -> str:
    if exc.errno in _NOT_DIR:
        return "not a directory"
    return exc.strerror or str(exc)


def _may_search(fd: int, uid: int, gid: int) -> bool:
    """Whether ``uid`` with the one group ``gid`` may search directory ``fd`` (x)."""
    info = os.fstat(fd)
    acl = _access_acl(fd)
    if acl is not None:
        return _acl_allows(acl, info, uid, gid, _SEARCH)
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


_SEARCH = 1  # the x bit of an ACL entry's permissions
_ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_Entry = tuple[int, int, int]  # tag, permissions (rwx as 4, 2, 1), uid or gid


def _access_acl(fd: int) -> list[_Entry] | None:
    """The access ACL of ``fd`` (None: it has none, or the file system keeps none).

    Raises:
        _UnreadableAclError: an ACL that cannot be read or understood (refused, not guessed).
    """
    try:
        raw = os.getxattr(fd, _ACL_XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise _UnreadableAclError(f"cannot read the ACL ({exc.strerror})") from exc
    if len(raw) < 4 or (len(raw) - 4) % 8 or struct.unpack_from("<I", raw)[0] != _ACL_VERSION:
        raise _UnreadableAclError("an ACL in a format carbond does not know")
    return [struct.unpack_from("<HHI", raw, at) for at in range(4, len(raw), 8)]


def _acl_allows(acl: list[_Entry], info: os.stat_result, uid: int, gid: int, want: int) -> bool:
    """The kernel's ``posix_acl_permission`` for ``uid`` with the one group ``gid``."""
    mask = next((perm for tag, perm, _ in acl if tag == _MASK), 7)
    found_group = False
    for tag, perm, ident in acl:
        if tag == _USER_OBJ and info.st_uid == uid:
            return perm & want == want
        if tag == _USER and ident == uid:
            return perm & mask & want == want
        if (tag == _GROUP_OBJ and info.st_gid == gid) or (tag == _GROUP and ident == gid):
            found_group = True
            if perm & want == want:
                return perm & mask & want == want
        if tag == _OTHER:
            return not found_group and perm & want == want
    return False
