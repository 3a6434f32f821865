"""``/proc/PID/mountinfo`` read as the kernel writes it, on real mounts the tests make (root
only; skipped elsewhere): mount points are bytes, not always UTF-8, and only a space, a tab,
a newline and a backslash are escaped in them, so that any other byte, whitespace to Python
too, is part of the path. Mount points are not the daemon's to choose: a user's FUSE mount
(``fusermount`` is setuid) under their home shows in the daemon's mount view too."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.executors.local_cgroup import cgroup2_mounts, probe, read_proc
from tests.daemon.executors.cgroup_subtree import cgroup_subtree

MOUNTINFO = Path("/proc/self/mountinfo")


@contextlib.contextmanager
def _mounted(point: Path, fstype: str) -> Iterator[Path]:
    """A real ``fstype`` mount at ``point`` (a path of any bytes), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8)")
    raw = os.fsencode(point)
    os.mkdir(raw)
    done = subprocess.run(["mount", "-t", fstype, "none", raw], capture_output=True, check=False)
    if done.returncode != 0:
        os.rmdir(raw)
        pytest.skip(f"cannot mount {fstype}: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", raw], check=True)
        os.rmdir(raw)


def test_a_mount_point_that_is_not_utf8_is_read_not_an_error(tmp_path: Path) -> None:
    """Before, the daemon's start (and doctor) died of a UnicodeDecodeError when any mount
    point anywhere was not UTF-8: a user's FUSE mount could stop carbond from starting."""
    with _mounted(tmp_path / os.fsdecode(b"mnt\xff\xfe"), "tmpfs") as point:
        text = read_proc(MOUNTINFO)
        found = probe("auto")
    assert f"{point} " in text  # as the kernel wrote it (no byte to escape)
    assert "cannot read" not in found.reason  # an answer, whatever it is on this host


def test_whitespace_python_splits_on_is_part_of_a_mount_point(tmp_path: Path) -> None:
    """A mount point whose name holds what str.split() takes for whitespace (\\x1f, \\x0c):
    the kernel does not escape it. Read with str.split(), such a name forged fields, here a
    cgroup2 mount at a directory its maker owns (where no real cgroup2 mount is listed
    first, the daemon took it for its subtree, and jobs' cgroup.procs were that user's)."""
    forged = "x\x1fopt\x1f-\x1fcgroup2\x1fcgroup2\x1frw\x0cbreak"
    with _mounted(tmp_path / "cg", "tmpfs"), _mounted(tmp_path / "cg" / forged, "tmpfs"):
        mounts = cgroup2_mounts(read_proc(MOUNTINFO))
        assert forged in read_proc(MOUNTINFO)
    points = [m.point for m in mounts]
    assert all(tmp_path not in p.parents for p in points), points


def test_a_cgroup2_mount_point_with_a_space_and_an_accent_is_found(tmp_path: Path) -> None:
    """``\\040`` is a space; é is two bytes written as they are (read before as Ã©)."""
    with cgroup_subtree() as (subtree, _), _mounted(tmp_path / "cg é", "cgroup2") as point:
        assert point in [m.point for m in cgroup2_mounts(read_proc(MOUNTINFO))]
        found = probe(str(point / subtree.name))
    assert found.path == point / subtree.name, found.reason
