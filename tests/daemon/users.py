"""Other local users for the ``root`` tests: create them, and run carbond's CLI as them.

The CLI must be importable by an unprivileged user: this venv's interpreter may live where
they cannot read it (pyenv under ``/root``), and so may the repository. :func:`cli_as` finds an
interpreter of the same Python version they can run, with this checkout (or a world-readable
copy of its three packages) and this venv's site-packages on ``PYTHONPATH``, or skips saying
why.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_PACKAGES = ("daemon", "policies", "forecasts")
# Made-up uids. A test that needs a uid with no passwd entry takes the first free one from
# UNUSED_UIDS_FROM; a test that creates a user for a made-up uid takes its uid from
# CREATED_UIDS_FROM, so a test running beside it (``make test``'s workers) never sees its
# "unused" uid get a user half-way through.
UNUSED_UIDS_FROM = 54_321
CREATED_UIDS_FROM = 58_321


def uid_without_user(start: int = UNUSED_UIDS_FROM) -> int:
    """The first uid from ``start`` on with no passwd entry on this host."""
    uid = start
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


def stand_in(uid: int) -> pwd.struct_passwd:
    """A passwd record for ``uid``, which has none (:func:`uid_without_user`), to run commands
    as it with :func:`as_user` and :func:`cli_as`: group ``uid`` too (a number, no group entry),
    name ``uid-<uid>`` (only skip messages show it). Nothing is added to the user database."""
    return pwd.struct_passwd((f"uid-{uid}", "x", uid, uid, "", "/", "/bin/sh"))


# useradd checks that the name is free before it locks /etc/passwd: two at once for one name
# (tests on parallel workers, or in two checkouts) both add it, two lines under one name with
# different uids. Every useradd of these helpers holds this lock across its check and its add.
_USERADD_LOCK = Path(tempfile.gettempdir()) / "carbond-tests-useradd.lock"


@contextlib.contextmanager
def _useradd_lock() -> Iterator[None]:
    with _USERADD_LOCK.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # released when the file closes
        yield


def _useradd(argv: Sequence[str], lookup: Callable[[], pwd.struct_passwd]) -> pwd.struct_passwd:
    """``lookup()``, after running ``useradd argv`` unless it already succeeds; one at a time.

    Raises:
        KeyError: ``lookup()`` still fails after ``useradd`` (its exit code and stderr said).
    """
    if shutil.which("useradd") is None:
        pytest.skip("useradd is not installed")
    with _useradd_lock():
        try:
            return lookup()
        except KeyError:
            pass
        made = subprocess.run(["useradd", *argv], check=False, capture_output=True, text=True)
        try:
            return lookup()
        except KeyError:
            raise KeyError(
                f"useradd {' '.join(argv)} exited {made.returncode}: {made.stderr.strip()}"
            ) from None


def local_user(name: str) -> pwd.struct_passwd:
    """The local user ``name``, created (a system user, no home) when missing; skips unless
    root with ``useradd``. Tests that ask for one user at once (``make test``'s workers) get
    the same user, made once.

    Raises:
        KeyError: ``useradd`` made no such user (its stderr in the message).
    """
    if os.geteuid() != 0:
        pytest.skip("needs root to create and become another user")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    return _useradd(["--system", "--no-create-home", name], lambda: pwd.getpwnam(name))


def user_with_uid(uid: int) -> pwd.struct_passwd:
    """A passwd entry for ``uid``, as every real submitter has (the daemon reads a queue file's
    lines only once its owner's passwd lookup succeeds: the jobs' group is the owner's primary
    group): ``uid``'s own, else a system user ``carbond-test-<uid>`` (no home) created with that
    uid. Skips unless root with ``useradd``. Give it a uid no other test uses: the user stays,
    and a test may expect its made-up uid to have no passwd entry (shown as a number).

    Raises:
        KeyError: ``useradd`` made no user with that uid (its stderr in the message).
    """
    if os.geteuid() != 0:
        pytest.skip("needs root to create another user")
    try:
        return pwd.getpwuid(uid)
    except KeyError:
        pass
    name = f"carbond-test-{uid}"
    return _useradd(
        ["--system", "--no-create-home", "--uid", str(uid), name], lambda: pwd.getpwuid(uid)
    )


def as_user(
    user: pwd.struct_passwd,
    argv: Sequence[str],
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``user`` (their uid and primary gid only), from ``/``."""
    return subprocess.run(
        list(argv), check=False, cwd="/", user=user.pw_uid, group=user.pw_gid, extra_groups=[],
        env=env or {"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120,
        input=stdin,
    )  # fmt: skip


class UserCli:
    """``carbond`` as another user: ``run(user, "submit", ...)``."""

    def __init__(self, python: str, env: dict[str, str]) -> None:
        self.python = python
        self.env = env

    def run(self, user: pwd.struct_passwd, *argv: str) -> subprocess.CompletedProcess[str]:
        return as_user(user, [self.python, "-m", "daemon", *argv], self.env)


def cli_as(user: pwd.struct_passwd, scratch: Path) -> UserCli:
    """A way to run this checkout's CLI as ``user``; ``scratch`` is a directory they can
    traverse (for a copy of the packages when the checkout is not readable to them)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    pythons = [sys.executable, f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    packages = site.getsitepackages()
    copy = scratch / "carbond-code"
    for code in (REPO, copy):
        if code == copy and not copy.exists():
            copy.mkdir(mode=0o755)
            for name in _PACKAGES:
                shutil.copytree(REPO / name, copy / name,
                                ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
            _open_up(copy)
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join([str(code), *packages]),
               "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
        for python in pythons:
            if not Path(python).exists():
                continue
            try:
                probe = as_user(user, [python, "-c", "import daemon.cli"], env)
            except (PermissionError, OSError):
                continue
            if probe.returncode == 0:
                return UserCli(python, env)
    pytest.skip(
        f"no Python {version} with carbond's dependencies is usable by {user.pw_name} "
        f"(tried {', '.join(pythons)} with {REPO} and a copy, site-packages {packages})"
    )


def _open_up(path: Path) -> None:
    for root, dirs, files in os.walk(path):
        for name in dirs:
            os.chmod(Path(root) / name, 0o755)
        for name in files:
            os.chmod(Path(root) / name, 0o644)


def open_dir() -> Path:
    """A fresh directory other users can traverse (pytest's own tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="carbond-uid-"))
    path.chmod(0o755)
    return path
