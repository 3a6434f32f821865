"""Is a state dir safe for a daemon that runs users' jobs as them and chowns their logs?

Anyone who can write the state dir, one of its directories or one of the directories above it
can plant a symlink or a hard link where carbond opens a file (a job log it then chowns to the
job's user, ``rejected.jsonl``, the ledger) and so take over any file carbond can write. Safe
means:

- no component of the path, as given, is a symlink (give the real path);
- every existing directory above the state dir is owned by root or by the daemon's user and
  writable by nobody else, unless it is sticky (like ``/tmp``);
- the state dir and its ``logs/``, ``queue.retired/`` and ``cache/`` are directories owned by
  the daemon's user and not writable by its group or others; ``queue.d/`` is the one shared
  directory, and must be sticky (mode 1733) so users cannot remove each other's files;
- ``rejected.jsonl`` and ``ledger.db`` are not symlinks (``queue.jsonl`` is opened with
  ``O_NOFOLLOW`` and checked by doctor's ``queue`` line).

A state dir that does not exist yet is judged by its existing ancestors (carbond creates the
rest with mode 0755). Files carbond creates are also opened with ``O_NOFOLLOW`` everywhere.

One daemon per state dir: :func:`lock_state_dir` holds ``daemon.lock`` (``flock``) while it
runs, so a second ``carbond run`` on the same ledger and queue is refused, not a second writer.
A carbond older than the lock takes none: one still running after an upgrade is found by the
pid its ``health.json`` names, a live process with this state dir's ledger open.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
from pathlib import Path

import structlog

from daemon.errors import DaemonError
from daemon.procs import process_uids
from daemon.supervision.health import HEALTH_NAME, read_health

__all__ = [
    "LEDGER_NAME",
    "LOCK_NAME",
    "StateDirLockedError",
    "UnsafeStateDirError",
    "ensure_safe_state_dir",
    "holds_open",
    "lock_state_dir",
    "state_dir_problems",
]

_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
_PRIVATE_DIRS = ("logs", "queue.retired", "cache")
_SHARED_DIR = "queue.d"
LEDGER_NAME = "ledger.db"  # the one spelling of the ledger's file name in a state dir
_NAMED_FILES = ("rejected.jsonl", LEDGER_NAME)  # queue.jsonl: doctor's queue check
LOCK_NAME = "daemon.lock"

log = structlog.get_logger(__name__)


class UnsafeStateDirError(DaemonError):
    """The state dir could be written by someone other than the daemon's user (one line)."""


class StateDirLockedError(DaemonError):
    """Another daemon runs with this state dir (one line naming its pid)."""


def lock_state_dir(state_dir: Path) -> int:
    """Take ``state_dir/daemon.lock`` for this process (``flock``, released when it exits,
    however it exits) and write its pid there; return the descriptor to keep open.

    The descriptor is close-on-exec: the jobs a daemon starts (which outlive it) never hold it.
    The file is the daemon's alone (0600; one an older carbond left 0644 is made so): ``flock``
    needs only a descriptor open for reading, so while every user could open it, any of them
    could hold the lock and keep every later daemon from starting. A lock held by a process
    of another uid than this one's (one who opened it while it was readable) is no daemon's:
    the file is replaced by a fresh one, locked, and ``daemon_lock_replaced`` logged.

    Raises:
        StateDirLockedError: a process of this uid holds it: a second daemon with this ledger.
        DaemonError: it cannot be opened (a symlink, a permission).
    """
    path = state_dir / LOCK_NAME
    try:
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _foreign_holder(fd)
            if holder is None:
                pid = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                raise StateDirLockedError(
                    f"another carbond daemon (pid {pid}) runs with state dir {state_dir}; "
                    "one daemon per state dir (stop it, or give this one another state_dir)"
                ) from None
            os.close(fd)
            fd = _replace_lock(path)
            log.warning("daemon_lock_replaced", path=str(path), holder_pid=holder[0],
                        holder_uid=holder[1])  # fmt: skip
    except StateDirLockedError:
        raise
    except OSError as exc:
        raise DaemonError(f"{path}: cannot open the daemon's lock: {exc.strerror}") from exc
    if (older := _unlocked_daemon(state_dir)) is not None:
        os.close(fd)
        raise StateDirLockedError(
            f"another carbond daemon (pid {older}, a version that takes no {LOCK_NAME}) runs "
            f"with state dir {state_dir}; one daemon per state dir (stop it, or give this one "
            "another state_dir)"
        )
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return fd


def _open_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
        os.fchmod(fd, 0o600)  # an older carbond's 0644 lock: no new reader may open it
    return fd


def _replace_lock(path: Path) -> int:
    """A fresh 0600 lock file, locked, renamed over ``path`` (whose lock someone else holds)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new inode: nobody else has it
        os.set_inheritable(fd, False)
        os.replace(tmp, path)
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd


def _foreign_holder(fd: int) -> tuple[int, int] | None:
    """``(pid, uid)`` of the holder of the ``flock`` on ``fd``'s file when every holder runs
    under another uid than this process (``/proc/locks``): no daemon of this state dir, which
    runs as its owner. None when a holder is of this uid, or cannot be told (not Linux, a pid
    of another pid namespace): then it may be a daemon."""
    st = os.fstat(fd)
    key = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    holders: list[tuple[int, int]] = []
    try:
        lines = Path("/proc/locks").read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK":  # "->": a waiter, not a holder
            continue
        try:
            major, minor, inode = fields[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) != key:
                continue
            pid = int(fields[4])
        except ValueError:
            continue
        uids = process_uids(pid)
        uid = None if uids is None else uids.real
        if pid <= 0 or uid is None or uid == os.geteuid():
            return None
        holders.append((pid, uid))
    return holders[0] if holders else None


def _unlocked_daemon(state_dir: Path) -> int | None:
    """The pid of a daemon running with ``state_dir`` without its lock (a carbond from before
    ``daemon.lock``, still running after an upgrade): the pid its ``health.json`` names, alive,
    run as this uid (the state dir's daemon runs as its owner) and holding this state dir's
    ``ledger.db`` open (a pid reused since is not, nor is any reader: readers write no
    ``health.json``; the ledger is readable by every user unless ``[ledger] private``, and a
    user's reader given that pid would keep every later daemon from starting). None when there
    is none or it cannot be told."""
    report = read_health(state_dir / HEALTH_NAME)
    if report is None or report.pid == os.getpid():
        return None
    uids = process_uids(report.pid)
    if uids is None or uids.real != os.geteuid():
        return None
    # gone, or not ours to look at (None): not taken for a daemon
    return report.pid if holds_open(report.pid, state_dir / LEDGER_NAME) else None


def holds_open(pid: int, path: Path) -> bool | None:
    """Whether process ``pid`` has ``path`` open (False: it does not, or is gone); None when
    its open files cannot be read (another user's process)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except PermissionError:
        return None
    except OSError:
        return False  # gone (or not a pid at all)
    target = os.path.realpath(path)
    for name in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") == target:
                return True
        except OSError:
            continue
    return False


def state_dir_problems(state_dir: Path, euid: int | None = None) -> list[str]:
    """Why ``state_dir`` is unsafe for a daemon running as ``euid`` (default: this process's
    effective uid); empty when it is safe. Each problem names the path."""
    uid = os.geteuid() if euid is None else euid
    path = Path(os.path.abspath(state_dir))
    problems: list[str] = []
    parts = path.parts
    for depth in range(1, len(parts) + 1):
        current = Path(*parts[:depth])
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return problems  # the rest is created by carbond
        except OSError as exc:
            return [*problems, f"{current}: cannot be inspected ({exc.strerror})"]
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(current)
            return [*problems, f"{current} is a symlink (to {target}); give the real path"]
        if not stat.S_ISDIR(st.st_mode):
            return [*problems, f"{current} is not a directory"]
        if current == path:
            problems += _own_dir_problems(current, st, uid)
        else:
            problems += _ancestor_problems(current, st, uid)
    problems += _inside_problems(path, uid)
    return problems


def ensure_safe_state_dir(state_dir: Path) -> None:
    """Refuse an unsafe ``state_dir`` (see the module docstring); create a missing one (mode
    0755, whatever the umask) below safe ancestors.

    Raises:
        UnsafeStateDirError: one line with every problem and what to do.
    """
    problems = state_dir_problems(state_dir)
    if not problems and not state_dir.exists():
        try:
            _make_dirs(Path(os.path.abspath(state_dir)))
        except OSError as exc:
            raise UnsafeStateDirError(f"{state_dir}: cannot create the state dir: {exc}") from exc
        problems = state_dir_problems(state_dir)
    if problems:
        raise UnsafeStateDirError(
            f"unsafe state dir {state_dir}: "
            + "; ".join(problems)
            + f" (it must be owned by uid {os.geteuid()} and writable only by it; "
            "see `carbond doctor`)"
        )


def _make_dirs(path: Path) -> None:
    """``mkdir -p`` with every created directory 0755, whatever the umask."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o755)
        os.chmod(directory, 0o755)


def _mode(st: os.stat_result) -> str:
    return f"mode {stat.S_IMODE(st.st_mode):04o}"


def _ancestor_problems(path: Path, st: os.stat_result, uid: int) -> list[str]:
    problems = []
    if st.st_uid not in (0, uid):
        problems.append(f"{path} is owned by uid {st.st_uid}, neither root nor uid {uid}")
    if st.st_mode & _OTHERS_WRITE and not st.st_mode & stat.S_ISVTX:
        problems.append(f"{path} is writable by group or others and not sticky ({_mode(st)})")
    return problems


def _own_dir_problems(path: Path, st: os.stat_result, uid: int) -> list[str]:
    problems = []
    if st.st_uid != uid:
        problems.append(f"{path} is owned by uid {st.st_uid}, not by the daemon's uid {uid}")
    if st.st_mode & _OTHERS_WRITE:
        problems.append(f"{path} is writable by group or others ({_mode(st)})")
    return problems


def _inside_problems(state_dir: Path, uid: int) -> list[str]:
    problems = []
    for name in (*_PRIVATE_DIRS, _SHARED_DIR):
        path = state_dir / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            problems.append(f"{path} is not a directory")
            continue
        if st.st_uid != uid:
            problems.append(f"{path} is owned by uid {st.st_uid}, not by the daemon's uid {uid}")
        if name == _SHARED_DIR:
            if stat.S_IMODE(st.st_mode) & ~0o1733 or (
                st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX
            ):
                problems.append(f"{path} must be mode 1733 (sticky), not {_mode(st)}")
        elif st.st_mode & _OTHERS_WRITE:
            problems.append(f"{path} is writable by group or others ({_mode(st)})")
    for name in _NAMED_FILES:
        path = state_dir / name
        if path.is_symlink():
            problems.append(f"{path} is a symlink; carbond never follows one there")
    return problems
