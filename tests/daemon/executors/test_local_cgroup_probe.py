"""Finding the daemon's cgroup v2 subtree (:func:`probe`) from ``/proc/PID/cgroup`` and
``/proc/PID/mountinfo`` texts; the cases that need a real cgroup run on one the tests make
(skipped where there is none)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemon.executors.local_cgroup import DAEMON_LEAF, cgroup2_mounts, own_cgroup, probe
from tests.daemon.executors.cgroup_subtree import cgroup_subtree
from tests.daemon.users import local_user

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
UNIFIED_RO = "30 23 0:27 / /sys/fs/cgroup ro,nosuid,nodev - cgroup2 cgroup2 rw,nsdelegate\n"
V1_ONLY = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
SERVICE = "0::/system.slice/carbond.service\n"


def _files(tmp_path: Path, mountinfo: str, cgroup: str) -> dict[str, Path]:
    (tmp_path / "mountinfo").write_text(mountinfo)
    (tmp_path / "cgroup").write_text(cgroup)
    return {"mountinfo": tmp_path / "mountinfo", "proc_cgroup": tmp_path / "cgroup"}


def _mountinfo_for(mount_point: Path, options: str = "rw") -> str:
    return f"41 31 0:38 / {mount_point} {options},relatime - cgroup2 cgroup2 rw\n"


def test_cgroup2_mounts_are_read_from_mountinfo() -> None:
    (hybrid,) = cgroup2_mounts(HYBRID)
    assert (hybrid.point, hybrid.root, hybrid.read_only) == (
        Path("/sys/fs/cgroup/unified"), "/", False
    )  # fmt: skip
    (unified,) = cgroup2_mounts(UNIFIED_RO)
    assert unified.point == Path("/sys/fs/cgroup") and unified.read_only
    assert cgroup2_mounts(V1_ONLY) == []


def test_own_cgroup_is_the_v2_line() -> None:
    assert own_cgroup("4:memory:/x\n" + SERVICE) == "/system.slice/carbond.service"
    assert own_cgroup("4:memory:/x\n1:cpu:/\n") is None


@pytest.mark.parametrize(
    ("setting", "mountinfo", "cgroup", "reason"),
    [
        ("off", HYBRID, SERVICE, "off in the settings"),
        ("auto", V1_ONLY, "4:memory:/x\n", "no cgroup2 file system is mounted"),
        ("auto", HYBRID, "4:memory:/x\n", "none in cgroup v2"),
        # the top of the hierarchy is nobody's subtree: never used on its own
        ("auto", _mountinfo_for(Path("/nonexistent/cg")), "0::/\n", "Delegate=yes"),
        ("auto", _mountinfo_for(Path("/nonexistent/cg")), SERVICE, "not delegated"),
        ("/nonexistent/cg", HYBRID, SERVICE, "is not on a cgroup2 mount"),
        ("/sys/fs/cgroup/unified", HYBRID, SERVICE, "is the root cgroup"),
        ("/sys/fs/cgroup/unified/nonexistent", HYBRID, SERVICE, "is not a cgroup"),
    ],
)
def test_no_subtree_says_why(
    tmp_path: Path, setting: str, mountinfo: str, cgroup: str, reason: str
) -> None:
    found = probe(setting, **_files(tmp_path, mountinfo, cgroup))
    assert found.path is None
    assert reason in found.reason


def test_an_unreadable_proc_file_is_a_reason_not_an_error(tmp_path: Path) -> None:
    found = probe(mountinfo=tmp_path / "missing", proc_cgroup=tmp_path / "missing")
    assert found.path is None and "cannot read" in found.reason


@pytest.fixture
def delegated() -> Iterator[tuple[Path, Path]]:
    """A real subtree systemd would have delegated (``user.delegate`` = 1), and its mount."""
    with cgroup_subtree() as (path, mount):
        try:
            os.setxattr(path, "user.delegate", b"1")
        except OSError as exc:
            pytest.skip(f"cannot set user.delegate on {path}: {exc.strerror} (Linux < 5.7)")
        yield path, mount


def _relative(path: Path, mount: Path) -> str:
    return "/" + str(path.relative_to(mount))


def test_a_delegated_cgroup_of_the_daemons_is_found(
    tmp_path: Path, delegated: tuple[Path, Path]
) -> None:
    path, mount = delegated
    found = probe(**_files(tmp_path, _mountinfo_for(mount), f"0::{_relative(path, mount)}\n"))
    assert found.path == path, found.reason
    assert "delegated by systemd" in found.reason


def test_a_daemon_already_in_its_leaf_finds_the_subtree_above(
    tmp_path: Path, delegated: tuple[Path, Path]
) -> None:
    path, mount = delegated
    (path / DAEMON_LEAF).mkdir()
    leaf = _relative(path / DAEMON_LEAF, mount)
    found = probe(**_files(tmp_path, _mountinfo_for(mount), f"0::{leaf}\n"))
    assert found.path == path, found.reason


def test_a_delegated_cgroup_on_a_read_only_mount_is_not_used(
    tmp_path: Path, delegated: tuple[Path, Path]
) -> None:
    """The unit's ProtectControlGroups=yes mounts /sys/fs/cgroup read-only for the daemon."""
    path, mount = delegated
    rel = _relative(path, mount)
    found = probe(**_files(tmp_path, _mountinfo_for(mount, "ro"), f"0::{rel}\n"))
    assert found.path is None and "read-only" in found.reason


def test_a_cgroup_without_the_delegation_mark_is_not_taken(tmp_path: Path) -> None:
    """A root daemon in a login session's scope could write it, but it is systemd's."""
    with cgroup_subtree() as (path, mount):
        rel = _relative(path, mount)
        found = probe(**_files(tmp_path, _mountinfo_for(mount), f"0::{rel}\n"))
    assert found.path is None and "Delegate=yes" in found.reason


def test_an_explicit_cgroup_is_used_without_the_mark(tmp_path: Path) -> None:
    with cgroup_subtree() as (path, mount):
        found = probe(str(path), **_files(tmp_path, _mountinfo_for(mount), "0::/\n"))
    assert found.path == path and "executors.local.cgroup" in found.reason


def _give(path: Path, uid: int) -> None:
    """What systemd does to a cgroup it delegates to a user: the directory and the files that
    move processes and divide it become theirs."""
    for entry in (path, path / "cgroup.procs", path / "cgroup.threads",
                  path / "cgroup.subtree_control"):  # fmt: skip
        os.chown(entry, uid, -1)


def _as_user(uid: int, gid: int, act: Callable[[], None]) -> None:
    """Run ``act`` in a child process that is ``uid``/``gid`` alone; fail if it raises."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            act()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"failed as uid {uid}"


def test_a_cgroup_delegated_to_another_user_is_not_taken(tmp_path: Path) -> None:
    """A root daemon started in a user's cgroup (a ``sudo carbond run`` in their tmux, which
    their systemd put in their ``user@UID.service``): the cgroup is that user's, who may set
    ``user.delegate`` on it, and who could then move another user's job out of its cgroup
    (cgroup v2 asks only for write access to a common ancestor's ``cgroup.procs``) or the
    daemon into one it kills. Checked with that user's real write."""
    user = local_user("carbond-cgowner")
    with cgroup_subtree() as (path, mount):
        _give(path, user.pw_uid)
        _as_user(user.pw_uid, user.pw_gid, lambda: os.setxattr(path, "user.delegate", b"1"))
        files = _files(tmp_path, _mountinfo_for(mount), f"0::{_relative(path, mount)}\n")
        found = probe(**files)
        explicit = probe(str(path), **files)
    assert found.path is None and explicit.path is None, (found, explicit)
    assert f"{path} is owned by carbond-cgowner (uid {user.pw_uid}" in found.reason
    assert "not the daemon's alone" in explicit.reason


def test_a_subtree_under_a_cgroup_another_user_may_write_is_not_taken(tmp_path: Path) -> None:
    """The subtree itself root's, but a cgroup above it another user's: moving a job's
    process from the subtree to that cgroup is a write that user may make."""
    user = local_user("carbond-cgowner")
    with cgroup_subtree() as (top, mount):
        _give(top, user.pw_uid)
        (top / "carbond").mkdir()
        os.setxattr(top / "carbond", "user.delegate", b"1")
        rel = _relative(top / "carbond", mount)
        found = probe(**_files(tmp_path, _mountinfo_for(mount), f"0::{rel}\n"))
    assert found.path is None
    assert f"{top} is owned by carbond-cgowner" in found.reason


def test_a_subtree_others_may_write_is_not_taken(tmp_path: Path) -> None:
    with cgroup_subtree() as (path, mount):
        os.chmod(path / "cgroup.procs", 0o666)
        found = probe(str(path), **_files(tmp_path, _mountinfo_for(mount), "0::/\n"))
    assert found.path is None
    assert f"{path / 'cgroup.procs'} is writable by group or others (mode 0666)" in found.reason
