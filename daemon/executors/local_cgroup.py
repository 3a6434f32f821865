"""Each local job in a cgroup of its own, so that nothing it starts outlives its stop.

A job's processes are found by their session (:mod:`daemon.executors.wrapper`); one that
leaves it (``setsid``, a double fork into a new session) escapes that. A cgroup v2 holds it:
a process cannot leave its cgroup without write access to ``cgroup.procs`` of a common
ancestor, which a root daemon's are (root's, 0644) while the job runs as its user. A daemon
that is not root runs only its own user's jobs, which own their cgroups as it does: they may
leave them (:func:`shared_with_jobs` says so).

Where the daemon has a writable cgroup v2 subtree of its own (the unit's ``Delegate=yes``,
found by :func:`probe`; or ``[executors.local] cgroup = "PATH"``), each job gets
``<subtree>/job-<id>``, made by the daemon before its wrapper starts; the wrapper writes its
own pid to that cgroup's ``cgroup.procs`` before it starts the job (as root, before the uid
switch), so the job's first instruction runs inside. Stopping the job kills the whole cgroup
(``cgroup.kill``, Linux 5.14; else SIGKILL to each pid of ``cgroup.procs`` until none is
left, the cgroup frozen meanwhile where it can be), then removes it. The daemon itself moves
to the leaf ``<subtree>/daemon`` (the "no internal processes" rule: an inner cgroup with
processes cannot hand controllers to its children). Here: which subtree (:func:`probe`) and the
daemon's leaf; the jobs' cgroups themselves: :mod:`daemon.executors.local_cgroup_jobs`.

Without such a subtree, jobs run as before: a process group in a session of its own.
"""

from __future__ import annotations

import os
import pwd
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import structlog

from daemon.executors.local_cgroup_caps import SWAP, JobCaps, enable
from daemon.executors.local_cgroup_jobs import JobCgroups, read_procs

__all__ = [
    "AUTO",
    "DAEMON_LEAF",
    "OFF",
    "CgroupProbe",
    "cgroup2_mounts",
    "enter_leaf",
    "job_cgroups",
    "own_cgroup",
    "probe",
    "read_proc",
    "shared_with_jobs",
]

log = structlog.get_logger(__name__)

AUTO = "auto"
OFF = "off"
DAEMON_LEAF = "daemon"
_DELEGATE_XATTRS = ("user.delegate", "trusted.delegate")  # set by systemd (251+) on Delegate=


@dataclass(frozen=True, slots=True)
class CgroupProbe:
    """The subtree jobs' cgroups go in (None: none usable) and, in words, how it was found
    or why there is none."""

    path: Path | None
    reason: str


@dataclass(frozen=True, slots=True)
class _Mount:
    point: Path  # where it is mounted
    root: str  # the cgroup path it shows at ``point``
    read_only: bool


def cgroup2_mounts(mountinfo: str) -> list[_Mount]:
    """The cgroup2 mounts of a ``/proc/PID/mountinfo`` text (:func:`read_proc`), in order."""
    mounts = []
    for line in mountinfo.split("\n"):  # the kernel's separators only: a path's other
        fields = line.split(" ")  # whitespace (\x1f, \x0c, ...) is its own, not escaped
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if len(fields) < dash + 3 or dash < 6 or fields[dash + 1] != "cgroup2":
            continue
        options = set(fields[5].split(",")) | set(fields[dash + 3].split(","))
        point = _unescape(fields[4])
        mounts.append(_Mount(Path(point), _unescape(fields[3]), "ro" in options))
    return mounts


def read_proc(path: Path) -> str:
    """A ``/proc`` text as the kernel wrote it: paths in it are bytes, not always UTF-8 (any
    mount point on the host, a user's FUSE mount under their home too), kept as
    :func:`os.fsdecode` keeps them (surrogate escapes), so that they name the same files.

    Raises:
        OSError: it cannot be read.
    """
    return path.read_bytes().decode("utf-8", "surrogateescape")


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """A mountinfo path field as the path it is: the kernel writes a space, tab, newline and
    backslash as ``\\ooo`` and every other byte as itself."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def own_cgroup(proc_cgroup: str) -> str | None:
    """The cgroup v2 path of a ``/proc/PID/cgroup`` text (its ``0::`` line); None without."""
    for line in proc_cgroup.split("\n"):
        if line.startswith("0::"):
            return line[3:] or None
    return None


def probe(
    setting: str = AUTO,
    *,
    proc_cgroup: Path = Path("/proc/self/cgroup"),
    mountinfo: Path = Path("/proc/self/mountinfo"),
    uid: int | None = None,
) -> CgroupProbe:
    """The subtree for ``[executors.local] cgroup`` = ``setting``: ``"off"`` (none),
    ``"auto"`` (the cgroup ``proc_cgroup`` names, if systemd delegated it: its
    ``user.delegate`` or ``trusted.delegate`` attribute is 1; or its parent, where the
    daemon already moved itself to :data:`DAEMON_LEAF`), or an absolute path. Either must be
    on a writable cgroup2 mount (as ``mountinfo`` shows it), writable by this uid, and this
    uid's alone (:func:`_writable_by_others`; ``uid``: the daemon's, when another process,
    doctor, asks for it; default this process's). Never raises: a reason says why there is
    none."""
    if setting == OFF:
        return CgroupProbe(None, "off in the settings (executors.local.cgroup)")
    try:
        mounts = cgroup2_mounts(read_proc(mountinfo))
        own = own_cgroup(read_proc(proc_cgroup))
    except OSError as exc:
        return CgroupProbe(None, f"cannot read {exc.filename}: {exc.strerror}")
    if not mounts:
        return CgroupProbe(None, "no cgroup2 file system is mounted (cgroup v1 only)")
    if setting != AUTO:
        return _usable(Path(setting), mounts, "set in executors.local.cgroup", uid)
    return _delegated_to_us(own, mounts, uid)


def _delegated_to_us(own: str | None, mounts: list[_Mount], uid: int | None) -> CgroupProbe:
    """The daemon's own cgroup ``own`` (or the parent of its leaf) if systemd delegated it."""
    path = _on_mount(own, mounts) if own is not None else None
    if path is None:
        return CgroupProbe(None, f"the daemon's cgroup ({own or 'none in cgroup v2'}) is "
                           "not under a cgroup2 mount it can see")  # fmt: skip
    if path.name == DAEMON_LEAF and _delegated(path.parent):
        path = path.parent
    if not _delegated(path):
        return CgroupProbe(None, f"its cgroup {path} is not delegated to it (the systemd "
                           "unit needs Delegate=yes, or set executors.local.cgroup)")  # fmt: skip
    return _usable(path, mounts, "delegated by systemd", uid)


def _on_mount(own: str, mounts: list[_Mount]) -> Path | None:
    for mount in mounts:
        root = mount.root.rstrip("/")
        if own == mount.root or own.startswith(root + "/"):
            return mount.point / own[len(root) :].lstrip("/")
    return None


def _delegated(path: Path) -> bool:
    for name in _DELEGATE_XATTRS:
        try:
            if os.getxattr(path, name).strip() in (b"1", b"yes", b"true"):
                return True
        except OSError:  # no such attribute, or trusted.* unreadable without CAP_SYS_ADMIN
            continue
    return False


def _usable(path: Path, mounts: list[_Mount], how: str, uid: int | None = None) -> CgroupProbe:
    """``path`` with ``how`` it was found, or None with what makes it unusable."""
    mount = max(
        (m for m in mounts if path == m.point or m.point in path.parents),
        key=lambda m: len(m.point.parts),
        default=None,
    )
    problem = None
    if not path.is_absolute():
        problem = "is not an absolute path"
    elif mount is None:
        problem = "is not on a cgroup2 mount"
    elif path == mount.point and mount.root == "/":
        problem = "is the root cgroup, not a subtree of the daemon's"
    elif mount.read_only:
        problem = "is on a read-only cgroup2 mount (the unit's ProtectControlGroups=yes does that)"
    elif not (path / "cgroup.procs").is_file():
        problem = "is not a cgroup (no cgroup.procs)"
    elif not (os.access(path, os.W_OK) and os.access(path / "cgroup.procs", os.W_OK)):
        problem = f"is not writable by uid {os.geteuid()}"
    else:
        problem = _writable_by_others(path, mount.point, os.geteuid() if uid is None else uid)
    if problem is not None:
        return CgroupProbe(None, f"{path} {problem}")
    return CgroupProbe(path, f"{path} ({how})")


# What another user who may write one of these, in the subtree or a cgroup above it, could do:
# move a job's process out of its cgroup (write access to a common ancestor's and the
# destination's ``cgroup.procs`` is all cgroup v2 asks, whoever owns the process), move the
# daemon into a cgroup it then kills, make the ``daemon`` leaf or freeze the subtree.
_GUARDED = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "cgroup.freeze")


def _writable_by_others(path: Path, top: Path, uid: int) -> str | None:
    """Why ``path`` is not the daemon's alone: the first of it or a cgroup above it (up to the
    mount point ``top``), or of their control files in :data:`_GUARDED`, owned by a uid other
    than root and ``uid`` (the daemon's), or writable by group or others; None when none is."""
    own = {0, uid}
    for cgroup in (path, *(p for p in path.parents if p == top or top in p.parents)):
        for entry in (cgroup, *(cgroup / name for name in _GUARDED)):
            try:
                st = entry.lstat()
            except FileNotFoundError:
                continue  # a control file this kernel has not (cgroup.freeze before 5.2)
            except OSError as exc:
                return f"cannot be checked: {entry}: {exc.strerror}"
            if st.st_uid not in own or st.st_mode & 0o022:
                return (
                    f"is not the daemon's alone: {entry} is {_whose(st, own)}, who could move jobs "
                    "out of their cgroups, or the daemon into one it kills (a cgroup delegated "
                    "to that user is not the daemon's to divide)"
                )
    return None


def _whose(st: os.stat_result, own: set[int]) -> str:
    mode = f"mode {stat.S_IMODE(st.st_mode):04o}"
    if st.st_uid not in own:
        try:
            return f"owned by {pwd.getpwuid(st.st_uid).pw_name} (uid {st.st_uid}, {mode})"
        except KeyError:
            return f"owned by uid {st.st_uid} ({mode})"
    return f"writable by group or others ({mode})"


def job_cgroups(
    setting: str = AUTO,
    *,
    caps: JobCaps | None = None,
    proc_cgroup: Path = Path("/proc/self/cgroup"),
    mountinfo: Path = Path("/proc/self/mountinfo"),
) -> JobCgroups | None:
    """The jobs' cgroups for ``[executors.local] cgroup`` = ``setting`` (:func:`probe`), this
    process moved to the subtree's leaf :data:`DAEMON_LEAF` if it is in the subtree's top,
    and the controllers ``caps`` need enabled for the jobs' cgroups
    (:func:`~daemon.executors.local_cgroup_caps.enable`); None, jobs then followed by their
    session only, when there is no usable subtree or the daemon cannot leave its top. Says
    which once: ``local_cgroups_enabled`` (with the caps each job gets) or
    ``local_cgroups_unavailable`` (with the reason); and ``local_cgroup_caps_unavailable``,
    a warning, for each cap set that jobs will run without, with why."""
    caps = caps if caps is not None else JobCaps()
    found = probe(setting, proc_cgroup=proc_cgroup, mountinfo=mountinfo)
    if found.path is not None and str(os.getpid()) in read_procs(found.path):
        try:
            enter_leaf(found.path)
        except OSError as exc:
            leaf = found.path / DAEMON_LEAF
            found = CgroupProbe(None, f"cannot move the daemon to {leaf} (a cgroup with "
                                f"processes cannot hold jobs' cgroups): {exc}")  # fmt: skip
    if found.path is None:
        log.warning(
            "local_cgroups_unavailable",
            reason=found.reason,
            effect="local jobs are followed by their session only: a process that leaves it "
            "(setsid) outlives the job's stop",
        )
        for controller in caps.controllers():
            _caps_unavailable(caps, controller, f"jobs get no cgroup: {found.reason}")
        return None
    problems = enable(found.path, caps)
    for controller, reason in problems.items():
        _caps_unavailable(caps, controller, reason)
    applied = caps.without(problems)
    note = shared_with_jobs(os.geteuid())
    log.info("local_cgroups_enabled", cgroup=str(found.path), how=found.reason,
             caps=applied.describe(), **({"note": note} if note else {}))  # fmt: skip
    return JobCgroups(found.path, caps=applied)


def _caps_unavailable(caps: JobCaps, controller: str, reason: str) -> None:
    effect = (
        "local jobs may swap past their memory.max: a leaking one slows every job on the "
        "node before the OOM killer stops it"
        if controller == SWAP
        else f"local jobs run without a {controller} cap of their own: a runaway one is "
        "stopped only at the unit's (MemoryMax=, TasksMax=), with every other job"
    )
    log.warning(
        "local_cgroup_caps_unavailable",
        settings=caps.settings_of(controller),
        reason=reason,
        effect=effect,
    )


def shared_with_jobs(uid: int | None) -> str | None:
    """What the jobs' cgroups do not hold when the daemon runs as ``uid`` (None: unknown) and
    that is not root, in words; None otherwise. Such a daemon runs only its own user's jobs,
    which then own their cgroups as it does (they share its uid)."""
    if uid is None or uid == 0:
        return None
    return (f"the daemon is not root (uid {uid}): its jobs run as its user, who owns their "
            "cgroups, so a job's process may move itself out of its cgroup, or kill or freeze "
            "it; a job's stop reaches only what stays in its cgroup")  # fmt: skip


def enter_leaf(subtree: Path) -> Path:
    """Move this process to ``<subtree>/daemon`` (made if missing) unless it is there; the
    leaf's path.

    Raises:
        OSError: the leaf cannot be made or entered.
    """
    leaf = subtree / DAEMON_LEAF
    leaf.mkdir(mode=0o755, exist_ok=True)
    if str(os.getpid()) not in read_procs(leaf):
        (leaf / "cgroup.procs").write_text(str(os.getpid()), encoding="ascii")
    return leaf
