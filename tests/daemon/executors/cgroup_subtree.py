"""A real cgroup v2 subtree for the tests, made and removed by them, or a skip saying why.

Needs a cgroup2 file system mounted read-write (on a hybrid host,
``/sys/fs/cgroup/unified``) whose top this process may make a directory in: root, on most
hosts. CI runners without one skip these tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.executors.local_cgroup import cgroup2_mounts, read_proc


def _remove_tree(path: Path) -> None:
    """Kill every process under ``path`` and remove it, deepest first."""
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        _remove_one(sub)
    _remove_one(path)


def _remove_one(path: Path) -> None:
    with contextlib.suppress(OSError):
        (path / "cgroup.kill").write_text("1")
    with contextlib.suppress(OSError, ValueError):
        for pid in (path / "cgroup.procs").read_text().split():
            os.kill(int(pid), signal.SIGKILL)
    for _ in range(200):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def controller_whereabouts(name: str, proc_cgroups: Path = Path("/proc/cgroups")) -> str:
    """Where the kernel has controller ``name``, from ``/proc/cgroups`` (its hierarchy: 0 is
    cgroup v2, or none mounted; another number, a cgroup v1 hierarchy), for a skip that says
    why a cgroup2 subtree lacks it: ``"pids attached to cgroup v1 hierarchy 8 (/proc/cgroups)"``."""
    try:
        text = proc_cgroups.read_text()
    except OSError as exc:
        return f"{proc_cgroups} unreadable ({exc.strerror})"
    for line in text.splitlines():
        fields = line.split()
        if line.startswith("#") or len(fields) < 4 or fields[0] != name:
            continue
        hierarchy, enabled = fields[1], fields[3]
        if enabled == "0":
            where = "disabled in this kernel (cgroup_disable=)"
        elif hierarchy == "0":
            where = "on cgroup v2 (or mounted nowhere), not handed down to this subtree"
        else:
            where = f"attached to cgroup v1 hierarchy {hierarchy}"
        return f"{name} {where} ({proc_cgroups})"
    return f"{name} not in this kernel (not in {proc_cgroups})"


@contextlib.contextmanager
def cgroup_subtree() -> Iterator[tuple[Path, Path]]:
    """``(subtree, mount point)``: a new, empty cgroup at the top of a writable cgroup2
    mount, removed (with whatever is left in it) afterwards. Skips when there is none."""
    try:
        mounts = cgroup2_mounts(read_proc(Path("/proc/self/mountinfo")))
    except OSError as exc:
        pytest.skip(f"cannot read /proc/self/mountinfo: {exc}")
    usable = [m for m in mounts if not m.read_only]
    if not usable:
        pytest.skip("no cgroup2 file system mounted read-write here (cgroup v1 only, or ro)")
    mount = usable[0]
    path = mount.point / f"carbond-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a cgroup under {mount.point}: {exc.strerror} (needs root)")
    try:
        yield path, mount.point
    finally:
        _remove_tree(path)
