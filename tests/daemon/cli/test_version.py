"""``carbond --version``: the installed package's version, the one the recalibration
checkpoint's fingerprint records, on stdout; a failed write is an error, as for ``--help``."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.learning.checkpoint import FoldInputs
from policies.footprint.recalibration import RecalibrationConfig


def test_version_prints_the_installed_packages_version(capsys: pytest.CaptureFixture[str]) -> None:
    """There was no ``carbond --version``: an operator checking what an upgrade installed had
    to ask pip. It prints the version the checkpoint's fingerprint records and exits 0."""
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    out, err = capsys.readouterr()
    recorded = FoldInputs.of(RecalibrationConfig(), [], code="-").version
    assert (info.value.code, out, err) == (0, f"carbond {metadata.version('carbond')}\n", "")
    assert out == f"carbond {recorded}\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_version_to_a_full_stdout_is_an_error() -> None:
    exe = Path(sys.executable).with_name("carbond")
    with open("/dev/full", "w", encoding="utf-8") as full:
        done = subprocess.run([str(exe), "--version"], stdout=full, stderr=subprocess.PIPE,
                              text=True, check=False, timeout=60)  # fmt: skip
    assert (done.returncode, done.stderr) == (
        1, "carbond: error: cannot write the output to stdout: No space left on device\n"
    )  # fmt: skip
