"""``tune --plot`` and ``replay --out``'s figures are written to a fresh file renamed over
their path, never through a symlink someone left there (matplotlib's ``savefig(path)``
followed it: run as root into a shared folder, it overwrote the file the link named)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
SECRET = b"root's file: must stay as it is\n"


def _argv(trace: Path, cluster_file: Path, intensity_files: list[Path]) -> list[str]:
    argv = ["--jobs", str(trace), "--jobs-format", "azure", "--cluster", str(cluster_file),
            "--start", "2023-06-05", "--days", "0.1", "--model", "llama-1b",
            "--requests-per-job", "64", "--tick", "300", "--workers", "1"]  # fmt: skip
    for path in intensity_files:
        argv += ["--intensity", str(path)]
    return argv


def _plant(path: Path, victim: Path) -> None:
    victim.write_bytes(SECRET)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(victim)


def _assert_replaced(path: Path, victim: Path) -> None:
    assert victim.read_bytes() == SECRET
    assert not path.is_symlink()
    assert path.read_bytes().startswith(PNG)


def test_tune_plot_replaces_a_planted_symlink(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    path, victim = tmp_path / "shared" / "front.png", tmp_path / "victim"
    _plant(path, victim)
    argv = ["tune", *_argv(trace, cluster_file, intensity_files), "--grid", "min_saving=0,0.5",
            "--json", "--plot", str(path)]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    _assert_replaced(path, victim)


def test_replay_figures_replace_a_planted_symlink(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    out = tmp_path / "out"
    argv = ["replay", *_argv(trace, cluster_file, intensity_files), "--policy", "run-now",
            "--json", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0  # a first run: where the figures go
    capsys.readouterr()
    figures = sorted(out.rglob("intensity.png"))
    assert figures
    path, victim = figures[0], tmp_path / "victim"
    path.unlink()
    _plant(path, victim)
    assert main(argv) == 0
    capsys.readouterr()
    _assert_replaced(path, victim)
