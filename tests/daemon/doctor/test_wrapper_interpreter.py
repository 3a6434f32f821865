"""``carbond doctor``'s ``wrapper`` line says when other users cannot run carbond's
interpreter (a venv made with pyenv's Python under ``/root``, drwx------): their
``carbond submit``, ``jobs`` and ``status`` then fail with "Permission denied". Until
2026-12-07 the line passed, as ``python -I`` imports the wrapper as root."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.doctor.wrapper import blocked_for_others, describe_wrapper


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory every user may search (pytest's own tmp_path is under a 0700 one)."""
    path = Path(tempfile.mkdtemp(dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def _file(path: Path, mode: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    path.chmod(mode)
    return path


def test_an_interpreter_every_user_can_run_is_not_blocked(base: Path) -> None:
    python = _file(base / "opt" / "bin" / "python3", 0o755)

    assert blocked_for_others(str(python)) is None


def test_an_interpreter_others_cannot_execute_is_named(base: Path) -> None:
    python = _file(base / "opt" / "bin" / "python3", 0o750)

    assert blocked_for_others(str(python)) == (f"{python} is not executable by others (-rwxr-x---)")


def test_a_venv_linked_to_a_private_interpreter_names_the_private_directory(base: Path) -> None:
    """The venv is readable; the Python its ``bin/python`` links to is under a 0700 home."""
    real = _file(base / "home" / "bin" / "python3.11", 0o755)
    (base / "home").chmod(0o700)
    venv = base / "opt" / "carbond" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(real)

    assert blocked_for_others(str(venv / "python")) == (
        f"{base / 'home'} is not searchable by others (drwx------)"
    )


@pytest.fixture
def private_venv(base: Path) -> Path:
    """This venv's interpreter, reached through a 0700 directory (as a venv under /root)."""
    if not (Path(sys.prefix) / "bin" / "carbond").exists():
        pytest.skip("needs carbond installed in this interpreter's environment")
    (base / "root").mkdir(mode=0o700)
    (base / "root" / "venv").symlink_to(sys.prefix)
    return base / "root" / "venv" / "bin" / Path(sys.executable).name


def test_a_carbond_on_every_users_path_that_others_cannot_run_fails(
    base: Path, private_venv: Path
) -> None:
    link = base / "carbond"  # as install.sh's /usr/local/bin/carbond
    link.symlink_to(private_venv.with_name("carbond"))

    status, detail = describe_wrapper(None, executable=str(private_venv), shared_link=link)

    assert status == "fail", detail
    assert detail.startswith(
        f"other users cannot run {private_venv}: {base / 'root'} is not searchable by others "
        "(drwx------), so their `carbond submit`, `jobs`, `status` and `cancel` fail with "
        "'Permission denied' (make the venv with an interpreter every user can run: "
        "PYTHON=/usr/bin/python3 systemd/install.sh); "
    ), detail


def test_an_interpreter_only_its_owner_runs_is_a_note(base: Path, private_venv: Path) -> None:
    """A carbond no link puts on every user's PATH (a checkout, a user's own daemon)."""
    status, detail = describe_wrapper(
        None, executable=str(private_venv), shared_link=base / "carbond"
    )

    assert status == "pass", detail
    assert f"; note: other users cannot run {private_venv}: {base / 'root'} is not" in detail
    assert detail.endswith(f"(fine while {base / 'carbond'} is not this carbond)")
