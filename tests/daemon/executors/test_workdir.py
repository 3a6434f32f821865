"""Entering a job's working directory as its user: every component checked, no symlink trusted."""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.executors.workdir import WorkdirError, open_workdir, workdir_problem

OTHER_UID = 54_321  # owns nothing here: checks use "others" bits
OTHER_GID = 54_321


@pytest.fixture
def tree() -> Iterator[Path]:
    """``open/`` (0755) holding ``open/shut/`` (0700) holding ``open/shut/inner/`` (0755), in
    a directory other users can traverse (pytest's own tmp dirs are 0700)."""
    root = Path(tempfile.mkdtemp(prefix="carbond-workdir-"))
    root.chmod(0o755)
    (root / "open" / "shut" / "inner").mkdir(parents=True)
    (root / "open").chmod(0o755)
    (root / "open" / "shut").chmod(0o700)
    (root / "open" / "file").write_text("x")
    yield root
    shutil.rmtree(root)


def _others_can_reach(path: Path) -> bool:
    return all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents])


def test_the_owner_enters_and_the_descriptor_is_that_directory(tree: Path) -> None:
    target = tree / "open" / "shut" / "inner"
    fd = open_workdir(str(target), os.getuid(), os.getgid())
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(target))
    finally:
        os.close(fd)


def test_another_user_is_refused_naming_the_component(tree: Path) -> None:
    if not _others_can_reach(tree):
        pytest.skip(f"{tree} is not reachable by other users on this machine")
    assert workdir_problem(str(tree / "open"), OTHER_UID, OTHER_GID) is None
    problem = workdir_problem(str(tree / "open" / "shut" / "inner"), OTHER_UID, OTHER_GID)
    assert problem == (
        f"uid {OTHER_UID} cannot enter working directory {tree}/open/shut/inner "
        f"(no search permission on {tree}/open/shut)"
    )


def test_a_symlink_is_judged_by_where_it_leads(tree: Path) -> None:
    if not _others_can_reach(tree):
        pytest.skip(f"{tree} is not reachable by other users on this machine")
    (tree / "open" / "link").symlink_to(tree / "open" / "shut" / "inner")
    problem = workdir_problem(str(tree / "open" / "link"), OTHER_UID, OTHER_GID)
    assert problem is not None and f"no search permission on {tree}/open/shut" in problem


def test_group_bits_count_for_the_primary_group(tree: Path) -> None:
    if not _others_can_reach(tree):
        pytest.skip(f"{tree} is not reachable by other users on this machine")
    shut = tree / "open" / "shut"
    shut.chmod(0o710)
    assert workdir_problem(str(shut), OTHER_UID, shut.stat().st_gid) is None
    assert workdir_problem(str(shut), OTHER_UID, OTHER_GID) is not None


@pytest.mark.parametrize(
    ("relative", "expected"),
    [("missing", "No such file or directory"), ("open/file", "not a directory")],
)
def test_missing_or_not_a_directory(tree: Path, relative: str, expected: str) -> None:
    problem = workdir_problem(str(tree / relative), os.getuid(), os.getgid())
    assert problem == f"working directory {tree / relative}: {expected}"


def test_a_relative_path_is_refused() -> None:
    with pytest.raises(WorkdirError, match="'work' is not an absolute path"):
        open_workdir("work", os.getuid(), os.getgid())


def test_a_symlink_in_a_directory_the_user_cannot_search_is_not_followed(tree: Path) -> None:
    """Root reads the link (realpath) but the user could not: neither that it exists nor
    where it leads may show through a refusal or a start (issue: the walk resolved as root)."""
    if not _others_can_reach(tree):
        pytest.skip(f"{tree} is not reachable by other users on this machine")
    (tree / "open" / "shut" / "to-open").symlink_to(tree / "open")
    (tree / "open" / "shut" / "to-secret").symlink_to(tree / "open" / "shut" / "inner")
    for name in ("to-open", "to-secret", "missing"):
        problem = workdir_problem(str(tree / "open" / "shut" / name), OTHER_UID, OTHER_GID)
        assert problem == (
            f"uid {OTHER_UID} cannot enter working directory {tree}/open/shut/{name} "
            f"(no search permission on {tree}/open/shut)"
        )


def test_symlinks_resolve_as_the_kernel_resolves_them(tree: Path) -> None:
    (tree / "open" / "rel").symlink_to("shut/inner/")
    (tree / "open" / "abs").symlink_to(tree / "open" / "rel")
    (tree / "open" / "up").symlink_to("../open/shut")
    (tree / "loop").symlink_to("loop")
    for name, expected in [("abs", "shut/inner"), ("up/..", "."), ("abs/../..", ".")]:
        fd = open_workdir(str(tree / "open" / name), os.getuid(), os.getgid())
        try:
            assert os.path.samestat(os.fstat(fd), os.stat(tree / "open" / expected)), name
        finally:
            os.close(fd)
    assert workdir_problem(str(tree / "loop"), os.getuid(), os.getgid()) == (
        f"working directory {tree}/loop: too many levels of symbolic links"
    )


def _set_acl(path: Path, *entries: tuple[int, int, int]) -> None:
    """Set ``path``'s access ACL from (tag, perm, id) entries in the kernel's order, in its
    xattr format (``setfacl`` may be missing); skips where the file system has no ACLs."""
    raw = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)
    try:
        os.setxattr(path, "system.posix_acl_access", raw)
    except OSError as exc:
        pytest.skip(f"cannot set a POSIX ACL on {path}: {exc}")


_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_ANY = 0xFFFFFFFF


def test_an_acl_that_shuts_a_user_out_is_obeyed(tree: Path) -> None:
    """A directory whose mode lets others search it (0755) but whose ACL denies one user
    (``setfacl -m u:alice:---``): the kernel keeps alice out, but the check read the mode
    bits only and let her job start inside, so it could read what lay below a directory she
    may not enter. ACL entries are now applied as the kernel applies them."""
    if not _others_can_reach(tree):
        pytest.skip(f"{tree} is not reachable by other users on this machine")
    gate = tree / "open"
    _set_acl(gate, (_USER_OBJ, 7, _ANY), (_USER, 0, OTHER_UID), (_GROUP_OBJ, 5, _ANY),
             (_MASK, 5, _ANY), (_OTHER, 5, _ANY))  # fmt: skip
    (gate / "below").mkdir(mode=0o755)

    assert workdir_problem(str(gate / "below"), OTHER_UID, OTHER_GID) == (
        f"uid {OTHER_UID} cannot enter working directory {gate}/below "
        f"(no search permission on {gate})"
    )
    assert workdir_problem(str(gate / "below"), OTHER_UID + 1, OTHER_GID + 1) is None


def test_an_owning_group_the_acl_narrows_below_its_mask_is_obeyed(tree: Path) -> None:
    """With an ACL the mode's group bits are the mask, not the owning group's entry: a
    ``group::---`` under a ``mask::r-x`` reads as group r-x in the mode."""
    if not _others_can_reach(tree):
        pytest.skip(f"{tree} is not reachable by other users on this machine")
    gate = tree / "open"
    os.chown(gate, 0, OTHER_GID)
    _set_acl(gate, (_USER_OBJ, 7, _ANY), (_GROUP_OBJ, 0, _ANY), (_MASK, 5, _ANY),
             (_OTHER, 5, _ANY))  # fmt: skip
    assert os.stat(gate).st_mode & 0o070 == 0o050

    assert workdir_problem(str(gate), OTHER_UID, OTHER_GID) is not None
    assert workdir_problem(str(gate), OTHER_UID + 1, OTHER_GID + 1) is None


def test_an_acl_that_lets_a_user_in_is_obeyed_too(tree: Path) -> None:
    """``setfacl -m u:alice:x`` on a 0700 directory: the kernel lets alice search it, so her
    job may start below it (it was refused: ACLs were not read)."""
    if not _others_can_reach(tree):
        pytest.skip(f"{tree} is not reachable by other users on this machine")
    shut = tree / "open" / "shut"
    _set_acl(shut, (_USER_OBJ, 7, _ANY), (_USER, 1, OTHER_UID), (_GROUP_OBJ, 0, _ANY),
             (_MASK, 1, _ANY), (_OTHER, 0, _ANY))  # fmt: skip

    assert workdir_problem(str(shut / "inner"), OTHER_UID, OTHER_GID) is None
    assert workdir_problem(str(shut / "inner"), OTHER_UID + 1, OTHER_GID + 1) is not None


@pytest.mark.parametrize("name", ["PID/cwd", "PID/root", "self/cwd"])
def test_a_proc_link_is_not_followed_for_a_user(name: str) -> None:
    """``/proc/PID/cwd``, ``root`` and ``fd/N`` are links the kernel reads only for whoever may
    trace PID: the user's own walk gets EACCES (or, for ``/proc/self``, names its own process,
    not the root wrapper's). A walk as root read them for any user's ``cwd``, so a job of one
    user started in, and its failure reason named, where another user's (or root's) process
    works (found on the dev VM: ``/proc/<pid>/cwd`` of another user's shell, refused only at
    that user's home, which the reason named). PID: this test's process, as the daemon's."""
    link = "/proc/" + name.replace("PID", str(os.getpid()))
    if not os.path.lexists(link):
        pytest.skip(f"{link} does not exist here (no /proc)")
    followed = link if name != "self/cwd" else "/proc/self"  # the first link on the way
    problem = workdir_problem(link, OTHER_UID, OTHER_GID)
    assert problem == (
        f"working directory {link}: {followed} is a link of /proc: not followed for a job's user "
        "(the kernel shows where it leads only to whom may trace that process)"
    )


def test_root_still_follows_a_proc_link() -> None:
    fd = open_workdir("/proc/self/cwd", 0, 0) if os.geteuid() == 0 else None
    if fd is None:
        pytest.skip("only root reads /proc/PID links of any process")
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(os.getcwd()))
    finally:
        os.close(fd)
