"""Entering a job's working directory as its user: every component checked, no symlink trusted."""

from __future__ import annotations

import os
import shutil
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
