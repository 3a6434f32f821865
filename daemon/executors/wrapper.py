"""The job wrapper: runs one job and records how it ended, even if the daemon is gone.

Started by :class:`daemon.executors.local.LocalExecutor` as
``python -I -m daemon.executors.wrapper SPEC_FILE`` with a clean environment, as the daemon's
user, as the leader of a new session (so the job's process group is the wrapper's pid). It
reads the spec the daemon wrote (argv, env, uid, gid, cwd, status path), claims the start
marker (``O_EXCL``; if a recovering daemon took it first, the job is not started), starts the job
without a shell (switching to the job's uid/gid with no supplementary groups, a root job's too, when
it runs as root; with ``oom_score_adj`` 0, not the daemon's -500, and the spec's resource limits:
:data:`JOB_LIMITS`), waits for it, and writes the exit status atomically (temp file + rename)
to the status path. SIGTERM, SIGINT and SIGHUP sent
to the process group reach the job; the wrapper itself catches and drops them so that it can
still record the job's end. Only the standard library is used: the wrapper is tiny and starts
fast (its carbond imports, :mod:`daemon.executors.workdir` and :mod:`daemon.executors.pidsignal`,
are standard library only).

Status file (JSON): ``{"exit_code": int | null, "signal": int | null, "reason": str,
"finished_at": RFC 3339 UTC}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.executors.pidsignal import session_of, signal_if
from daemon.executors.workdir import open_workdir

__all__ = ["EXIT_NOT_FOUND", "EXIT_NOT_RUNNABLE", "JOB_LIMITS", "main", "write_status"]

EXIT_NOT_FOUND = 127
EXIT_NOT_RUNNABLE = 126
# The resource limits a spec may set in its job's process, by the name the settings give them
# (``[executors.local.limits]``).
JOB_LIMITS = {
    "nproc": resource.RLIMIT_NPROC,
    "nofile": resource.RLIMIT_NOFILE,
    "core_bytes": resource.RLIMIT_CORE,
    "fsize_bytes": resource.RLIMIT_FSIZE,
}


def write_status(
    path: Path, exit_code: int | None, signal_number: int | None, reason: str = ""
) -> None:
    """Write the status file atomically (temp file in the same directory, fsync, rename)."""
    record = {
        "exit_code": exit_code,
        "signal": signal_number,
        "reason": reason,
        "finished_at": datetime.now(UTC).isoformat(),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # never write through a link left in its place
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _start(spec: dict[str, Any]) -> subprocess.Popen[bytes]:
    # as root: the job's uid and primary gid, no supplementary groups (a root job's too, never
    # the daemon's groups); not root: the daemon checked the job is its uid (it runs in its groups)
    switch = os.geteuid() == 0
    # Enter the job's directory as its user may (checked component by component, no symlink
    # followed), here in the wrapper; the job inherits it (Popen's cwd would chdir as root).
    fd = open_workdir(str(spec["cwd"]), int(spec["uid"]), int(spec["gid"]))
    try:
        os.fchdir(fd)
    finally:
        os.close(fd)
    limits = _limits(spec.get("limits", {}))
    with _job_oom_score():
        return subprocess.Popen(  # an argv list, no shell, by design
            [str(a) for a in spec["argv"]],
            env={str(k): str(v) for k, v in spec["env"].items()},
            stdin=subprocess.DEVNULL,
            user=int(spec["uid"]) if switch else None,
            group=int(spec["gid"]) if switch else None,
            extra_groups=[] if switch else None,
            umask=0o022,
            # in the job's process once it is the job's user, before exec: RLIMIT_NPROC
            # counts the processes of the process's real uid (the wrapper's are root's)
            # (the wrapper has one thread: preexec_fn is safe here)
            preexec_fn=(lambda: _set_limits(limits)) if limits else None,  # noqa: PLW1509
        )


def _limits(wanted: dict[str, Any]) -> list[tuple[int, int]]:
    """``(resource, value)`` for each limit of ``wanted`` (:data:`JOB_LIMITS`), at most this
    process's hard limit (raising one needs a privilege the unit does not give): one above it
    is that limit, said on stderr (the job's log); ``RLIM_INFINITY`` (-1) is that limit too.

    Raises:
        KeyError: a name not in :data:`JOB_LIMITS`.
    """
    found = []
    for name, asked in sorted(wanted.items()):
        which, value = JOB_LIMITS[name], int(asked)
        hard = resource.getrlimit(which)[1]
        if value == resource.RLIM_INFINITY:
            value = hard
        elif hard != resource.RLIM_INFINITY and value > hard:
            print(f"carbond-wrapper: limits.{name} = {value} is above the daemon's hard limit "
                  f"{hard}; the job gets {hard}", file=sys.stderr)  # fmt: skip
            value = hard
        found.append((which, value))
    return found


def _set_limits(limits: list[tuple[int, int]]) -> None:
    """Set each limit, soft and hard alike (the job cannot raise them again)."""
    for which, value in limits:
        resource.setrlimit(which, (value, value))


JOB_OOM_SCORE_ADJ = 0  # the kernel's default: the OOM killer picks a job before the daemon
_OOM_SCORE_ADJ = "/proc/self/oom_score_adj"


@contextlib.contextmanager
def _job_oom_score() -> Iterator[None]:
    """While the job is started, this process's ``oom_score_adj`` is :data:`JOB_OOM_SCORE_ADJ`,
    which the job inherits; then the wrapper's own (the daemon's: the unit's
    ``OOMScoreAdjust=-500``) again, so the OOM killer picks jobs, not the daemon nor a wrapper.

    Here, not in the job after its uid switch: a process that changed uid is not dumpable
    until it execs, so its ``/proc/self`` files are root's and it cannot write them. Raising
    the value needs no privilege; lowering it back needs none either down to the floor
    systemd set (``oom_score_adj_min``). A failure is only told on stderr (the job's log)."""
    try:
        with open(_OOM_SCORE_ADJ, encoding="ascii") as handle:
            own = int(handle.read())
    except (OSError, ValueError):
        own = JOB_OOM_SCORE_ADJ  # no such file: nothing to change
    if own != JOB_OOM_SCORE_ADJ:
        _write_oom_score(JOB_OOM_SCORE_ADJ)
    try:
        yield
    finally:
        if own != JOB_OOM_SCORE_ADJ:
            _write_oom_score(own)


def _write_oom_score(value: int) -> None:
    try:
        with open(_OOM_SCORE_ADJ, "w", encoding="ascii") as handle:
            handle.write(str(value))
    except OSError as exc:
        print(f"carbond-wrapper: cannot set oom_score_adj to {value}: {exc}", file=sys.stderr)


def _ignore(signum: int, frame: object) -> None:
    """The job gets the signal through its process group; the wrapper stays to record it."""


def run(spec_path: Path) -> int:
    """Run the job described by ``spec_path``; return the wrapper's exit code."""
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    status = Path(spec["status_file"])
    # A handler, not SIG_IGN: ignored signals would stay ignored in the job after exec.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _ignore)
    try:  # the start claim: a recovering daemon may have taken it to stop this launch
        os.close(os.open(spec["start_marker"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        print(
            "carbond-wrapper: a recovering daemon claimed the start; not starting", file=sys.stderr
        )
        return 0
    cgroup = str(spec.get("cgroup") or "")
    if cgroup:  # before the job starts: its first instruction runs inside
        try:  # never O_CREAT: a cgroup has the file, a plain directory must not pass
            procs = os.open(os.path.join(cgroup, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(procs, str(os.getpid()).encode())
            finally:
                os.close(procs)
        except OSError as exc:
            print(f"carbond-wrapper: cannot enter the job's cgroup {cgroup}: {exc}",
                  file=sys.stderr)  # fmt: skip
            write_status(status, EXIT_NOT_RUNNABLE, None, f"cannot enter its cgroup: {exc}")
            return 0
    try:
        child = _start(spec)
    except FileNotFoundError as exc:
        print(f"carbond-wrapper: command not found: {exc.filename}", file=sys.stderr)
        write_status(status, EXIT_NOT_FOUND, None, f"command not found: {spec['argv'][0]}")
        return 0
    except (OSError, subprocess.SubprocessError) as exc:
        # SubprocessError: the limits could not be set in the job's process
        print(f"carbond-wrapper: cannot start the job: {exc}", file=sys.stderr)
        write_status(status, EXIT_NOT_RUNNABLE, None, f"cannot start: {exc}")
        return 0
    code = child.wait()
    left = _end_stragglers(cgroup)
    note = f"; {left} process(es) it left running were terminated" if left else ""
    if code < 0:
        write_status(status, None, -code, f"killed by {signal.Signals(-code).name}{note}")
    else:
        write_status(status, code, None, note.removeprefix("; "))
    return 0


STRAGGLER_GRACE_S = 5.0  # SIGTERM to SIGKILL for processes a finished job left behind


def _session_members() -> list[int]:
    """Pids in this wrapper's session (the job's), the wrapper excepted (Linux /proc): its
    process group and any group a job's process moved to with ``setpgid`` (a shell with job
    control does that for each background job). None unless the wrapper leads its session (as
    the local executor starts it): a session it does not lead is not the job's."""
    me, session = os.getpid(), os.getsid(0)
    if session != me:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != b"Z":  # field 6 (session), not a zombie
            pids.append(int(entry))
    return pids


def _members(cgroup: str) -> list[int]:
    """The job's pids, the wrapper excepted: its session's (:func:`_session_members`) and
    those in its cgroup and the cgroups under it (none when it has none)."""
    return sorted((set(_session_members()) | _cgroup_procs(cgroup)) - {os.getpid()})


def _cgroup_procs(cgroup: str) -> set[int]:
    """The pids in the job's cgroup and in every cgroup under it (a root job may make some
    and move processes there); none when it has no cgroup."""
    pids: set[int] = set()
    for path, _, _ in os.walk(cgroup) if cgroup else ():
        try:
            with open(os.path.join(path, "cgroup.procs"), encoding="ascii") as handle:
                pids.update(int(pid) for pid in handle.read().split())
        except (OSError, ValueError):  # removed meanwhile, or a bad line
            continue
    return pids


def _end_stragglers(cgroup: str = "") -> int:
    """After the job's main process ended: SIGTERM what it left in its session and in its
    cgroup (a job that forked and exited would keep its GPU busy after carbond freed it),
    SIGKILL what is still there after ``STRAGGLER_GRACE_S``. Returns how many there were. (A
    process that left the session with setsid escapes this unless the job has a cgroup,
    which it cannot leave: :mod:`daemon.executors.local_cgroup`.)

    Each is signalled only if it is still in this session or this cgroup once a pidfd on it
    is open (:mod:`daemon.executors.pidsignal`): one that ended after the scan, its pid given
    to another user's process meanwhile, is not signalled (the wrapper may run as root). This
    session's id cannot be reused meanwhile: the wrapper leads it."""
    session = os.getsid(0)

    def ours(pid: int) -> bool:
        return session_of(pid) == session or pid in _cgroup_procs(cgroup)

    pids = _members(cgroup)
    for pid in pids:
        signal_if(pid, signal.SIGTERM, ours)
    deadline = time.monotonic() + STRAGGLER_GRACE_S
    while _members(cgroup) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in _members(cgroup):
        signal_if(pid, signal.SIGKILL, ours)
    return len(pids)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -I -m daemon.executors.wrapper SPEC_FILE``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -I -m daemon.executors.wrapper SPEC_FILE", file=sys.stderr)
        return 2
    return run(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
