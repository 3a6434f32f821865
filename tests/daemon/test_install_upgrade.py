"""systemd/install.sh run again over an earlier install: the new carbond replaces the old one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "systemd" / "install.sh"
PROBE = "carbond_upgrade_probe"  # the one module of the test's wheels


def _wheel(folder: Path, build: str) -> Path:
    """A wheel of carbond 0.1.0 (the version every carbond has had so far) whose one module
    says which ``build`` it is: two builds differ in their code, not in their version."""
    folder.mkdir()
    wheel = folder / "carbond-0.1.0-py3-none-any.whl"
    info = "carbond-0.1.0.dist-info"
    files = {
        f"{PROBE}.py": f"BUILD = {build!r}\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: carbond\nVersion: 0.1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def _interpreter() -> str:
    """A Python the install may make its venv from: as root, one other users can run (the
    script refuses any other)."""
    candidates = [sys.executable, getattr(sys, "_base_executable", sys.executable)]
    candidates += [p for p in (shutil.which("python3", path="/usr/bin:/bin"),) if p]
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return sys.executable
    for python in candidates:
        tried = subprocess.run(
            ["runuser", "-u", "nobody", "--", python, "-c", "import venv, ensurepip"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        if tried.returncode == 0:
            return python
    pytest.skip(f"no interpreter other users can run with venv and ensurepip: {candidates}")


def _install(root: Path, wheel: Path, python: str) -> None:
    done = subprocess.run(
        ["sh", str(INSTALL), "--destdir", str(root), "--prefix", "/opt/carbond", "--wheel",
         str(wheel), "--no-activate"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHON": python, "PIP_NO_INDEX": "1",
             "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_installing_a_new_wheel_of_the_same_version_replaces_the_old_code(tmp_path: Path) -> None:
    """docs/operations.md's upgrade is the install run again with the new wheel; pip kept the
    installed carbond 0.1.0 ("Requirement already satisfied", silenced by --quiet), so the
    venv ran the old code after the upgrade said nothing was wrong."""
    python = _interpreter()
    root = tmp_path / "root"
    _install(root, _wheel(tmp_path / "old", "old"), python)
    _install(root, _wheel(tmp_path / "new", "new"), python)

    venv_python = root / "opt" / "carbond" / "bin" / "python"
    built = subprocess.run(
        [str(venv_python), "-c", f"import {PROBE}; print({PROBE}.BUILD)"],
        capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert built.stdout.strip() == "new"
