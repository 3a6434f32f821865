"""The local executor's per-job files and ``/proc`` lookups (no policy, no state).

Files in the log dir, per job: ``<id>.out``/``<id>.err`` (owned by the job's user),
``<id>.spec.json`` (what the wrapper runs, 0600), ``<id>.started.<attempt>`` (the start claim),
``<id>.status.json`` (how it ended, written by the wrapper). A process is identified by its pid
*and* its start time in clock ticks since boot, so a recycled pid never passes for the job.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import shutil
import stat
import subprocess
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from daemon.executors.base import ExitStatus, LaunchSpec
from daemon.procs import process_uids

__all__ = [
    "DEFAULT_PATH",
    "claim",
    "find_wrapper",
    "open_log",
    "previous_attempt",
    "process_environ",
    "process_start_ticks",
    "read_status",
    "session_members",
    "start_marker",
    "wrapper_spec",
    "write_private",
]

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def process_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot; None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    if fields[0] in {"Z", "X"}:
        return None
    return int(fields[19])  # field 22 of the whole line; fields here start at field 3


def session_members(sid: int) -> list[int]:
    """Pids of the live processes in session ``sid`` (``/proc/PID/stat`` field 6), whatever
    process group they moved to; a zombie is not counted."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] not in {"Z", "X"} and int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


def job_members(sid: int, job_id: str) -> list[int]:
    """The live processes of session ``sid`` that carry ``CARBOND_JOB_ID=job_id`` in their
    environment, as a job's processes inherit it: the job's own, told apart from those of a
    later session under the same id (its wrapper gone, ``sid`` may be reused)."""
    wanted = f"CARBOND_JOB_ID={job_id}".encode()
    deadline = time.monotonic() + _ENVIRON_READS_S
    return [
        pid
        for pid in session_members(sid)
        if wanted in (process_environ(pid, deadline) or b"").split(b"\0")
    ]


_ENVIRON_READS_S = 5.0  # for all of one job's: a user's stopped `cat` must not stall the daemon


def process_environ(pid: int, deadline: float | None = None) -> bytes | None:
    """``/proc/PID/environ`` (None: gone or unreadable, or ``deadline``, a ``time.monotonic``
    time, passed before it could be read).

    Reading another user's needs ``CAP_SYS_PTRACE``, which the systemd unit does not give the
    daemon (root or not): then it is read by ``cat`` run as the process's own user (its real,
    effective and saved uid and gid all alike, as the kernel requires of a reader without that
    capability), who may always read it.
    """
    path = f"/proc/{pid}/environ"
    try:
        return Path(path).read_bytes()
    except PermissionError:
        pass
    except OSError:
        return None
    ids = _process_ids(pid)
    cat = shutil.which("cat", path=DEFAULT_PATH)
    left = _ENVIRON_READS_S if deadline is None else deadline - time.monotonic()
    if ids is None or cat is None or os.geteuid() != 0 or left <= 0:
        return None
    try:
        read = subprocess.run(  # an argv, no shell
            [cat, "--", path], capture_output=True, timeout=left,
            check=False, env={}, cwd="/", user=ids[0], group=ids[1], extra_groups=[],
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return read.stdout if read.returncode == 0 else None


def _process_ids(pid: int) -> tuple[int, int] | None:
    """The uid and gid of ``pid`` when its real, effective, saved and file-system ids agree."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    found: dict[str, set[str]] = {}
    for line in lines.splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid"):
            found[key] = set(value.split())
    uids, gids = found.get("Uid", set()), found.get("Gid", set())
    if len(uids) != 1 or len(gids) != 1:
        return None
    return int(uids.pop()), int(gids.pop())


def start_marker(spec_file: Path) -> Path | None:
    """The start marker named in ``spec_file`` (None: no readable spec, nothing launched)."""
    try:
        return Path(json.loads(spec_file.read_text(encoding="utf-8"))["start_marker"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def claim(marker: Path) -> bool:
    """Create ``marker`` exclusively; False when someone (the wrapper) already has."""
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def find_wrapper(spec_file: Path) -> int | None:
    """The pid of the wrapper running ``spec_file`` (from ``/proc``), if any.

    The wrapper's command line is ``PYTHON -I -m daemon.executors.wrapper SPEC_FILE`` and its
    real uid is the daemon's: anyone may start a process with that command line, and a job
    run by one of those would be another user's decoy.
    """
    wanted = [b"-I", b"-m", b"daemon.executors.wrapper", str(spec_file).encode(), b""]
    me = os.geteuid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            uids = process_uids(int(entry.name))
            if argv[1:] != wanted or uids is None or uids.real != me:
                continue
        except OSError:
            continue
        return int(entry.name)
    return None


def open_log(path: Path, uid: int, gid: int) -> int:
    """Open ``path`` for appending, owned by the job's user so they can read it.

    Never through a symlink, and never a file with other names (a hard link): the file is
    chowned to the job's user, so either would hand them someone else's file.

    Raises:
        OSError: cannot be opened, or is a symlink, a hard link or not a regular file.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)  # its user's alone: a primary group may be shared
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise OSError(errno.EPERM, "not a private regular file (a link?); refusing", str(path))
    if os.geteuid() == 0:
        os.fchown(fd, uid, gid)
    return fd


def write_private(path: Path, payload: dict[str, object]) -> None:
    """Write ``payload`` as JSON to ``path`` (0600), atomically (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # a stale one (a crash): create ours afresh, never through a link
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(payload, handle)
    os.replace(tmp, path)


def previous_attempt(spec_file: Path) -> int:
    """The launch attempt recorded in ``spec_file`` (0 when there is none)."""
    try:
        return int(json.loads(spec_file.read_text(encoding="utf-8"))["attempt"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def wrapper_spec(
    spec: LaunchSpec,
    status: Path,
    attempt: int,
    limits: Mapping[str, int] | None = None,
    cgroup: Path | None = None,
) -> dict[str, object]:
    """What the wrapper runs: argv, a from-scratch environment (``CUDA_VISIBLE_DEVICES`` the
    spec's NVML indices, numbered in NVML's order by ``CUDA_DEVICE_ORDER=PCI_BUS_ID``),
    uid/gid, cwd (the spec's, else the user's home or ``/``), the resource limits set in the
    job's process (by name, as :data:`daemon.executors.wrapper.JOB_LIMITS`), the status file,
    this attempt's start marker and the cgroup the wrapper enters before it starts the job
    ("": none)."""
    try:
        user = pwd.getpwuid(spec.uid)
        home, login = user.pw_dir, user.pw_name
    except KeyError:
        home, login = "/", str(spec.uid)
    env = {
        "PATH": DEFAULT_PATH,
        "HOME": home,
        "USER": login,
        "LOGNAME": login,
        "LANG": "C.UTF-8",
        **dict(spec.env),
        # the indices are NVML's (the meter's); CUDA numbers fastest first unless told
        # NVML's (PCI bus) order, and would run the job on another GPU of a mixed node
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in spec.gpu_indices),
        "CARBOND_JOB_ID": spec.job_id,
    }
    return {
        "job_id": spec.job_id,
        "argv": list(spec.argv),
        "env": env,
        "uid": spec.uid,
        "gid": spec.gid,
        "cwd": spec.cwd or (home if os.path.isdir(home) else "/"),
        "limits": dict(limits or {}),
        "status_file": str(status),
        "attempt": attempt,
        "start_marker": str(status.with_name(f"{spec.job_id}.started.{attempt}")),
        "cgroup": str(cgroup) if cgroup is not None else "",
    }


def read_status(job_id: str, path: Path, now: datetime) -> ExitStatus | None:
    """The status the wrapper recorded (None: none yet); an unreadable one ends the job at
    ``now`` with the reason."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ExitStatus(
            job_id,
            datetime.fromisoformat(raw["finished_at"]),
            exit_code=None if raw["exit_code"] is None else int(raw["exit_code"]),
            signal=None if raw["signal"] is None else int(raw["signal"]),
            reason=str(raw.get("reason", "")),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return ExitStatus(job_id, now, None, None, f"unreadable status file {path}: {exc}")
