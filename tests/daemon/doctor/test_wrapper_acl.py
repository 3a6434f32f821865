"""``carbond doctor``'s ``wrapper`` line judged whether other users can run carbond's
interpreter by mode bits alone (until 2026-12-07): a POSIX ACL (``setfacl``) that grants a
group the ``x`` its mode denies others failed the line though that group's users can run it,
and one that denies a user what ``o+x`` grants passed it. Such a path is now named as not
judged, in a note on a passing line. Set with the real ``setfacl`` on a real file system."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import daemon
from daemon.doctor.acl import acl_overrides_others
from daemon.doctor.wrapper import acl_not_judged, blocked_for_others, describe_wrapper

SETFACL = shutil.which("setfacl")
pytestmark = pytest.mark.skipif(SETFACL is None, reason="needs setfacl (apt-get install acl)")


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory every user may search (pytest's own tmp_path is under a 0700 one) on a
    file system that keeps ACLs (else skipped, saying so)."""
    path = Path(tempfile.mkdtemp(dir="/tmp"))
    path.chmod(0o755)
    probe = path / "probe"
    probe.touch()
    if _setfacl("-m", "g:0:r", probe).returncode != 0:
        shutil.rmtree(path)
        pytest.skip("/tmp does not keep POSIX ACLs")
    yield path
    shutil.rmtree(path)


def _setfacl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert SETFACL is not None
    argv = [SETFACL, *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)


def _acl(path: Path, entry: str) -> None:
    done = _setfacl("-m", entry, path)
    assert done.returncode == 0, done.stderr


def _private_home(base: Path) -> tuple[Path, Path]:
    """``(home, python)``: an interpreter under a 0700 directory (as pyenv's under /root)."""
    home = base / "home"
    (home / "bin").mkdir(parents=True)
    python = home / "bin" / "python3"
    python.write_text("")
    python.chmod(0o755)
    home.chmod(0o700)
    return home, python


def test_a_group_granted_by_acl_is_not_judged_a_failure(base: Path) -> None:
    home, python = _private_home(base)
    assert blocked_for_others(str(python)) is not None  # its mode alone: blocked
    _acl(home, "g:65534:rx")  # e.g. the group of carbond's users

    assert acl_overrides_others(home, 1)
    assert blocked_for_others(str(python)) is None
    assert acl_not_judged(str(python)) == home


def test_a_user_denied_by_acl_is_not_judged_a_pass(base: Path) -> None:
    bin_dir = base / "opt" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python3"
    python.write_text("")
    python.chmod(0o755)
    assert acl_not_judged(str(python)) is None
    _acl(python, "u:65534:r")  # o+x, but this user may not execute it

    assert blocked_for_others(str(python)) is None
    assert acl_not_judged(str(python)) == python


def test_an_acl_that_agrees_with_the_mode_is_judged_by_it(base: Path) -> None:
    home, python = _private_home(base)
    _acl(home, "u:65534:r")  # a named user without x, as others: still blocked for all

    assert blocked_for_others(str(python)) == (
        f"{home} is not searchable by others (drwxr-----)"  # the mask shows as group bits
    )
    assert acl_not_judged(str(python)) is None


def test_a_named_entry_the_mask_limits_is_judged_by_what_it_leaves(base: Path) -> None:
    home, python = _private_home(base)
    _acl(home, "g:65534:rx")
    _acl(home, "m::r")  # the mask takes x from every named entry

    assert blocked_for_others(str(python)) is not None
    assert acl_not_judged(str(python)) is None


def _venv_of_a_shared_python(where: Path) -> Path:
    """A venv at ``where`` made from a system Python every user can run (this test's own
    may sit under a 0700 home), importing this checkout and its packages: ``bin/python``."""
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.exists() or blocked_for_others(str(system)) is not None:
        pytest.skip(f"needs {system}, runnable by every user, to make a venv from")
    done = subprocess.run([str(system), "-m", "venv", "--without-pip", str(where)],
                          capture_output=True, text=True, check=False, timeout=120)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"{system} cannot make a venv: {done.stderr.strip()[-200:]}")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    paths = [str(Path(daemon.__file__).resolve().parents[1]), *site.getsitepackages()]
    pth = where / "lib" / version / "site-packages" / "carbond.pth"
    pth.write_text("\n".join(paths) + "\n")
    (where / "bin" / "carbond").touch()
    return where / "bin" / "python"


def test_the_wrapper_line_notes_the_acl_it_does_not_judge(base: Path) -> None:
    """A venv under a 0700 directory (as /root) whose ACL lets a group in, linked from every
    user's PATH: the line failed on the directory's mode; it passes with a note now."""
    root = base / "root"
    root.mkdir(mode=0o700)
    python = _venv_of_a_shared_python(root / "venv")
    link = base / "carbond"  # as install.sh's /usr/local/bin/carbond
    link.symlink_to(python.with_name("carbond"))
    assert describe_wrapper(None, executable=str(python), shared_link=link)[0] == "fail"
    _acl(root, "g:65534:x")  # e.g. the group of carbond's users

    status, detail = describe_wrapper(None, executable=str(python), shared_link=link)

    assert status == "pass", detail
    assert detail.endswith(
        f"; note: ACLs present on {root} (its mode does not say who may use it: `getfacl "
        f"{root}`): whether other users can run {python} is not judged"
    ), detail
