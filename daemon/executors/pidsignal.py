"""Signals that reach only the process that was checked, never a later one given its pid.

A pid names a process only while it lives: between reading ``/proc`` (this pid is in the job's
session, this pid is the wrapper started at tick T) and ``kill``, the process may end and its
number go to an unrelated process, which the daemon (root) would then signal. Where Linux
offers pidfds (``os.pidfd_open``, ``signal.pidfd_send_signal``: Linux 5.3), a pidfd is opened
first and the process checked after: the pidfd stays bound to the process it was opened on,
so the signal goes to the process the check saw, or nowhere if it has ended. A process group
is signalled through its leader's pidfd (``PIDFD_SIGNAL_PROCESS_GROUP``, Linux 6.9), or else
with ``killpg`` right after the check. Elsewhere: check, then ``kill``, as before.

Standard library only: the job wrapper imports it.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable

__all__ = ["session_of", "signal_group_if", "signal_if"]

PIDFD_SIGNAL_PROCESS_GROUP = 1 << 2  # <linux/pidfd.h>, Linux 6.9; not in Python 3.11's signal


def session_of(pid: int) -> int | None:
    """The session of live process ``pid`` (``/proc/PID/stat`` field 6); None when it is gone
    or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[3])


def signal_if(pid: int, sig: int, is_ours: Callable[[int], bool]) -> bool:
    """Send ``sig`` to ``pid`` if ``is_ours(pid)`` holds once a pidfd on it is open; whether it
    was sent (False: not ours, or gone)."""
    fd = None
    try:
        fd = _pidfd(pid)
        if not is_ours(pid):
            return False
        if fd is None:
            os.kill(pid, sig)
        else:
            signal.pidfd_send_signal(fd, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if fd is not None:
            os.close(fd)


def signal_group_if(pgid: int, sig: int, is_leader: Callable[[int], bool]) -> bool:
    """Send ``sig`` to the process group ``pgid`` if ``is_leader(pgid)`` holds for its leader
    once a pidfd on it is open (through that pidfd where the kernel can, else ``killpg``);
    whether it was sent."""
    fd = None
    try:
        fd = _pidfd(pgid)
        if not is_leader(pgid):
            return False
        if fd is not None:
            try:
                signal.pidfd_send_signal(fd, sig, None, PIDFD_SIGNAL_PROCESS_GROUP)
                return True
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # EINVAL: a kernel before 6.9, no such flag
                    raise
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if fd is not None:
            os.close(fd)


def _pidfd(pid: int) -> int | None:
    """A pidfd on ``pid``; None where there are none (not Linux, a kernel before 5.3, a
    seccomp filter refusing it).

    Raises:
        ProcessLookupError: ``pid`` is gone.
    """
    opener = getattr(os, "pidfd_open", None)
    if opener is None or not hasattr(signal, "pidfd_send_signal"):
        return None
    try:
        fd: int = opener(pid)
    except ProcessLookupError:
        raise
    except OSError:  # ENOSYS, EPERM (seccomp), EINVAL (not a thread-group leader): no pidfd
        return None
    return fd
