"""``carbond doctor``'s ``health`` check: the running daemon's health file and its disk.

``health.json`` (:mod:`daemon.supervision.health`) says what the daemon finds wrong and, from
``updated_at``, whether it still writes the file; the pid in it is checked to still be that
daemon (alive, run as the state dir's owner and holding the ledger open); the state dir's
file system is checked for being read-only or nearly full, which stops those writes.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

from daemon.procs import process_uids
from daemon.settings import Settings
from daemon.statedir import LEDGER_NAME, holds_open
from daemon.supervision.health import HEALTH_NAME, HEARTBEAT_S, STALE_S, read_health

__all__ = ["describe_health", "effective_uid", "running_pid", "still_the_daemon"]

Status = Literal["pass", "fail", "skip"]


def describe_health(settings: Settings, now: datetime) -> tuple[Status, str]:
    """``(status, detail)``: what the running daemon says is wrong (``health.json``), whether
    it still writes that file, and whether the state dir's file system is read-only or nearly
    full. Never raises for a missing or unreadable file."""
    state = settings.state_dir
    problems = _disk_problems(state)
    report = read_health(state / HEALTH_NAME)
    if report is None:
        if os.path.lexists(state / HEALTH_NAME):
            problems.append(f"{state / HEALTH_NAME} cannot be read as the health carbond "
                            "writes (the running daemon replaces it within "
                            f"{HEARTBEAT_S:.0f} s; remove it if none runs)")  # fmt: skip
        if problems:
            return "fail", "; ".join(problems)
        return "skip", f"no {HEALTH_NAME} yet (the daemon has not run here)"
    age_s = (now - report.updated_at).total_seconds()
    ahead = age_s < -_AHEAD_S  # the clock was stepped back since it was written
    when = (
        f"at {report.updated_at.isoformat()}, {-age_s:.0f} s ahead of this clock"
        if ahead
        else f"{max(age_s, 0.0):.0f} s ago"
    )
    alive = still_the_daemon(report.pid, state)
    if not alive and not problems:
        return "skip", f"daemon not running (pid {report.pid} wrote {HEALTH_NAME} {when})"
    step = report.step  # the step it was in when it wrote the file, and when that is stuck
    in_step = step is not None and age_s > STALE_S and now <= step[2]
    if alive and age_s > STALE_S and not in_step:
        stuck = f"pid {report.pid} last wrote {HEALTH_NAME} {when}"
        if step is not None:  # a step that may run long, past the time it was given
            stuck += (f", in its {step[0]} step since {step[1].isoformat()}, which may "
                      f"take until {step[2].isoformat()}")  # fmt: skip
        problems.append(f"{stuck}: stuck, or it cannot write the state dir")
    elif alive and ahead:  # a running daemon writes it at its next step after a clock step
        problems.append(f"pid {report.pid} last wrote {HEALTH_NAME} {when}: the clock was "
                        "stepped back and it has not written it since: stuck, or it cannot "
                        "write the state dir")  # fmt: skip
    problems += [
        f"{key}{_lasting(report.since.get(key), now)}: {message}"
        for key, message in report.problems.items()
    ]
    if problems:
        return "fail", "; ".join(problems)
    if in_step and step is not None:
        return "pass", (f"pid {report.pid} reports no problem ({when}); in its {step[0]} step "
                        f"since {step[1].isoformat()}, which may take until "
                        f"{step[2].isoformat()}")  # fmt: skip
    return "pass", f"pid {report.pid} reports no problem ({when})"


def running_pid(settings: Settings) -> int | None:
    """The pid of the daemon running on ``settings.state_dir``: the one ``health.json`` names,
    if it still holds the ledger open as the state dir's owner (:func:`still_the_daemon`;
    None when none runs, or when this user cannot tell: another user's process whose fds it
    cannot read may be a reused pid)."""
    state = settings.state_dir
    report = read_health(state / HEALTH_NAME)
    if report is None or holds_open(report.pid, state / LEDGER_NAME) is not True:
        return None
    return report.pid if still_the_daemon(report.pid, state) else None


def _lasting(since: datetime | None, now: datetime) -> str:
    """`` (for N s, since T)``: how long a problem has lasted (a ledger locked by another
    process fails every step the same way: how long, not only that); empty when unknown."""
    if since is None:
        return ""
    return f" (for {max((now - since).total_seconds(), 0.0):.0f} s, since {since.isoformat()})"


def still_the_daemon(pid: int, state_dir: Path) -> bool:
    """Whether ``pid`` still runs the daemon that wrote ``health.json`` in ``state_dir``: alive,
    running as the state dir's owner (the daemon's user: :mod:`daemon.statedir`) and holding
    its ledger open. After a crash or a reboot the pid is reused by any process, and taking
    that for the daemon said it was stuck; a reader holds the ledger open too, and the ledger
    is readable by every user unless ``[ledger] private``, so a user's process given the pid
    was taken for the daemon, and doctor (root) reported its limits, cgroup and mounts as the
    daemon's. Of a process whose fds this user cannot read, only that it is alive and whose it
    is can be told."""
    if effective_uid(pid) != _owner(state_dir):
        return False
    held = holds_open(pid, state_dir / LEDGER_NAME)
    return Path(f"/proc/{pid}").exists() if held is None else held


def effective_uid(pid: int) -> int | None:
    """Process ``pid``'s effective uid; None when it is gone."""
    uids = process_uids(pid)
    return None if uids is None else uids.effective


def _owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except OSError:
        return None


# How far ahead of doctor's ``now`` a fresh file may be: the daemon may write it while doctor's
# earlier checks run; further ahead, the clock was stepped back since the write.
_AHEAD_S: Final = HEARTBEAT_S
_MIN_FREE_BYTES: Final = 64 * 2**20  # less free than this (or 5 % of a small disk): FAIL


def _disk_problems(state: Path) -> list[str]:
    try:
        fs = os.statvfs(state)
    except OSError:
        return []  # state_dir's own check says it is missing
    problems = []
    if fs.f_flag & os.ST_RDONLY:
        problems.append(f"{state} is on a read-only file system: nothing can be ingested or "
                        "recorded")  # fmt: skip
    free = fs.f_bavail * fs.f_frsize
    if free < min(_MIN_FREE_BYTES, fs.f_blocks * fs.f_frsize // 20):  # small disks: 5 %
        problems.append(f"{state} has {free / 2**20:.1f} MiB free: the ledger cannot grow")
    return problems
