"""``carbond tune --plot`` draws the sweep's carbon-vs-wait Pareto front (issue 14 item 7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daemon.cli import main


def test_tune_writes_its_pareto_front(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    path = tmp_path / "pareto.png"
    argv = ["tune", "--jobs", str(trace), "--jobs-format", "azure", "--cluster",
            str(cluster_file), "--start", "2023-06-05", "--days", "0.5", "--slack", "4h",
            "--model", "llama-1b", "--requests-per-job", "64", "--tick", "300",
            "--grid", "min_saving=0,0.5", "--json", "--plot", str(path)]  # fmt: skip
    for intensity in intensity_files:
        argv += ["--intensity", str(intensity)]
    assert main(argv) == 0
    assert f"wrote {path}" in capsys.readouterr().err
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.shape[:2] == (605, 880)
    front = (abs(pixels[..., 0] - 0xE6) < 10) & (abs(pixels[..., 1] - 0x55) < 10)
    assert front.sum() > 50  # the front's points are drawn


def test_tune_draws_settings_that_miss_deadlines_as_crosses_off_the_front(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
) -> None:  # fmt: skip
    """Runs six times their estimate with no slack: the settings that miss deadlines are drawn
    (purple crosses), the others make the front."""
    path = tmp_path / "pareto.png"
    argv = ["tune", "--jobs", str(trace), "--jobs-format", "azure", "--cluster",
            str(cluster_file), "--start", "2023-06-05", "--days", "0.5", "--slack", "0",
            "--model", "llama-1b", "--requests-per-job", "64", "--tick", "60",
            "--truth-factor", "6", "--grid", "duration_margin=0,2.5", "--grid", "guard_s=60,1800",
            "--json", "--plot", str(path)]  # fmt: skip
    for intensity in intensity_files:
        argv += ["--intensity", str(intensity)]
    assert main(argv) == 0
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    crosses = (
        (abs(pixels[..., 0] - 0x75) < 10)
        & (abs(pixels[..., 1] - 0x6B) < 10)
        & (abs(pixels[..., 2] - 0xB1) < 10)
    )
    front = (abs(pixels[..., 0] - 0xE6) < 10) & (abs(pixels[..., 1] - 0x55) < 10)
    assert crosses.sum() > 20 and front.sum() > 50


def _tune_argv(trace: Path, cluster: Path, intensity: list[Path], plot: Path) -> list[str]:
    argv = ["tune", "--jobs", str(trace), "--jobs-format", "azure", "--cluster", str(cluster),
            "--start", "2023-06-05", "--days", "0.1", "--model", "llama-1b",
            "--requests-per-job", "64", "--tick", "300", "--grid", "min_saving=0,0.5",
            "--workers", "1", "--json", "--plot", str(plot)]  # fmt: skip
    for path in intensity:
        argv += ["--intensity", str(path)]
    return argv


def test_tune_plot_without_a_suffix_writes_the_file_named(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """As ``report --plot``: matplotlib wrote ``front.png`` beside ``front`` and the command
    said ``wrote front``."""
    path = tmp_path / "front"
    assert main(_tune_argv(trace, cluster_file, intensity_files, path)) == 0
    assert f"wrote {path}" in capsys.readouterr().err
    assert not path.with_suffix(".png").exists()
    with Image.open(path) as image:
        assert image.format == "PNG"


@pytest.mark.parametrize("name", ["front.xyz", "folder"])
def test_tune_plot_it_cannot_draw_is_one_line_before_any_replay(
    name: str, trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """An unknown suffix ended in matplotlib's traceback after every replay; a folder was
    drawn into ``folder.png`` beside it."""
    path = tmp_path / name
    if name == "folder":
        path.mkdir()
    before = sorted(tmp_path.iterdir())
    assert main(_tune_argv(trace, cluster_file, intensity_files, path)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"carbond: error: --plot {path}: ") and err.count("\n") == 1
    assert sorted(tmp_path.iterdir()) == before
