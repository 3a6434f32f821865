"""``carbond doctor``'s ``wrapper`` line: the job wrapper starts under ``python -I``, and each
``[executors.local.limits]`` value it would set is within the daemon's hard limit of that
resource. The wrapper cannot give a job more than its own hard limit (raising one needs
``CAP_SYS_RESOURCE``, which the unit drops): a value above it becomes that limit at each job's
start, said only in the job's stderr (:func:`daemon.executors.wrapper._limits`), so the
configured value is never what a job gets.

The daemon's hard limits are the running daemon's (``/proc/PID/limits``, readable by every
user) when one runs; else doctor's own (``resource.getrlimit``): from a shell they may differ
from what the unit's ``Limit*=`` gives the daemon, and the line says whose they are.
"""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
from pathlib import Path
from typing import Final, Literal

from daemon.doctor.acl import acl_overrides_others
from daemon.doctor.running_daemon import running_pid
from daemon.executors.wrapper import JOB_LIMITS
from daemon.settings import Settings, config_problem

__all__ = [
    "SHARED_LINK",
    "acl_not_judged",
    "blocked_for_others",
    "describe_wrapper",
    "hard_limits",
    "limit_problems",
]

Status = Literal["pass", "fail", "skip"]

# Each job limit's row in ``/proc/PID/limits`` and the unit's directive that sets it.
_PROC_ROWS: Final = {
    "nproc": "Max processes",
    "nofile": "Max open files",
    "core_bytes": "Max core file size",
    "fsize_bytes": "Max file size",
}
_UNIT_DIRECTIVES: Final = {
    "nproc": "LimitNPROC=",
    "nofile": "LimitNOFILE=",
    "core_bytes": "LimitCORE=",
    "fsize_bytes": "LimitFSIZE=",
}


# install.sh's link that puts ``carbond`` on every user's PATH.
SHARED_LINK: Final = Path("/usr/local/bin/carbond")


def describe_wrapper(
    settings: Settings | None, *, executable: str | None = None, shared_link: Path = SHARED_LINK
) -> tuple[Status, str]:
    """``(status, detail)``: whether ``python -I`` (``executable``: this one's) imports the
    job wrapper, whom jobs can run as, and (given ``settings``) each job limit above the
    daemon's hard limit, as a problem. An interpreter other users cannot run
    (:func:`blocked_for_others`) is a problem when ``shared_link`` (install.sh's
    ``/usr/local/bin/carbond``) is this interpreter's ``carbond``: every user runs it, and
    install.sh refuses such an interpreter; else a note."""
    python = executable or sys.executable
    argv = [python, "-I", "-c", "import daemon.executors.wrapper"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "fail", f"cannot start {python}: {exc}"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return "fail", f"`{python} -I` cannot import the job wrapper: {last}"
    who = "root: jobs run as their submitters" if os.geteuid() == 0 else (
        f"uid {os.geteuid()}: only this user's jobs can run")  # fmt: skip
    detail = f"{python} -I -m daemon.executors.wrapper; {who}"
    problems = [] if settings is None else limit_problems(settings, running_pid(settings))
    blocked = blocked_for_others(python)
    if blocked is not None:
        message = (
            f"other users cannot run {python}: {blocked}, so their `carbond submit`, `jobs`, "
            "`status` and `cancel` fail with 'Permission denied' (make the venv with an "
            "interpreter every user can run: PYTHON=/usr/bin/python3 systemd/install.sh)"
        )
        if _on_every_users_path(python, shared_link):
            problems.append(message)
        else:
            detail += f"; note: {message} (fine while {shared_link} is not this carbond)"
    elif (acl := acl_not_judged(python)) is not None:
        detail += (f"; note: ACLs present on {acl} (its mode does not say who may use it: "
                   f"`getfacl {acl}`): whether other users can run {python} is not "
                   "judged")  # fmt: skip
    if problems:
        return "fail", "; ".join([*problems, detail])
    return "pass", detail


def _on_every_users_path(python: str, shared_link: Path) -> bool:
    """Whether ``shared_link`` resolves to a ``carbond`` beside ``python`` (its venv's)."""
    if not shared_link.exists():
        return False
    beside = os.path.realpath(os.path.dirname(os.path.abspath(python)))
    return os.path.dirname(os.path.realpath(shared_link)) == beside


def blocked_for_others(executable: str) -> str | None:
    """What keeps a user other than the owner (and not in its group) from running
    ``executable``, by its mode bits: ``DIR is not searchable by others (drwx------)`` for the
    first directory on its path, as given or with every link resolved, without ``o+x``, or
    ``FILE is not executable by others (-rwxr-x---)``; None when nothing does. A path whose
    POSIX ACL names users or groups its mode does not speak for is not judged here (None):
    :func:`acl_not_judged` names it. A job's argv does not need it (the wrapper runs as
    root); every user's CLI does."""
    for path, what in _on_the_way(executable):
        if (why := _not_for_others(path, what)) is not None and not acl_overrides_others(
            path, os.X_OK
        ):
            return why
    return None


def acl_not_judged(executable: str) -> Path | None:
    """The first directory or file on the way to ``executable`` whose POSIX ACL grants or
    denies named users or groups other than what its mode gives others (``getfacl``): whether
    the users who run carbond can pass it is not judged. None when there is none."""
    return next(
        (path for path, _ in _on_the_way(executable) if acl_overrides_others(path, os.X_OK)),
        None,
    )


def _on_the_way(executable: str) -> list[tuple[Path, str]]:
    """Each directory a user passes to run ``executable`` (its path as given, then with every
    link resolved), ``searchable``, then the file itself, ``executable``."""
    given = Path(os.path.abspath(executable))
    resolved = Path(os.path.realpath(executable))
    seen: set[Path] = set()
    way = []
    for path in (given, resolved):
        for directory in reversed(path.parents):
            if directory not in seen:
                seen.add(directory)
                way.append((directory, "searchable"))
    return [*way, (resolved, "executable")]


def _not_for_others(path: Path, what: str) -> str | None:
    """Why others cannot use ``path`` (no ``o+x``: ``PATH is not WHAT by others (MODE)``, or
    why it cannot be read); None when they can."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    if not mode & stat.S_IXOTH:
        return f"{path} is not {what} by others ({stat.filemode(mode)})"
    return None


def hard_limits(pid: int | None) -> tuple[dict[str, int], str]:
    """The hard limit of each job limit (by its settings name; ``RLIM_INFINITY``, -1, for
    unlimited) and whose they are: process ``pid``'s from ``/proc/PID/limits`` (the running
    daemon's), or this process's when ``pid`` is None or its file cannot be read."""
    if pid is not None:
        try:
            text = Path(f"/proc/{pid}/limits").read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            pass
        else:
            found = _parse_proc_limits(text)
            if found is not None:
                return found, f"the running daemon's, pid {pid}"
    own = {name: resource.getrlimit(which)[1] for name, which in JOB_LIMITS.items()}
    return own, "doctor's own: no running daemon here to ask"


def _parse_proc_limits(text: str) -> dict[str, int] | None:
    """The hard limits of ``/proc/PID/limits`` (columns: name, soft, hard, units); None when
    a row is missing or unreadable."""
    found = {}
    for name, row in _PROC_ROWS.items():
        line = next((line for line in text.splitlines() if line.startswith(row + " ")), None)
        if line is None:
            return None
        fields = line[len(row) :].split()
        if len(fields) < 2:
            return None
        hard = fields[1]
        if hard == "unlimited":
            found[name] = resource.RLIM_INFINITY
        elif hard.isdigit():
            found[name] = int(hard)
        else:
            return None
    return found


def limit_problems(settings: Settings, pid: int | None) -> list[str]:
    """One line per ``[executors.local.limits]`` value above the daemon's hard limit (the
    running daemon's, ``pid``, or doctor's own): ``FILE:LINE: executors.local.limits.KEY:
    VALUE is above the daemon's hard limit N (whose) ...``; none when no region runs jobs
    locally."""
    if not any(region.executor == "local" for region in settings.regions):
        return []
    wanted = settings.executors.local.limits.as_rlimits()  # "unlimited": the hard limit
    if not wanted:
        return []
    hard, whose = hard_limits(pid)
    problems = []
    for name, value in sorted(wanted.items()):
        limit = hard[name]
        if resource.RLIM_INFINITY in (value, limit) or value <= limit:
            continue
        message = (
            f"{value} is above the daemon's hard limit {limit} ({whose}): each local job gets "
            f"{limit} (raising a hard limit needs CAP_SYS_RESOURCE, which the unit drops: lower "
            f"the value, or raise the unit's {_UNIT_DIRECTIVES[name]} and restart the daemon)"
        )
        problems.append(config_problem(settings, ("executors", "local", "limits", name), message))
    return problems
