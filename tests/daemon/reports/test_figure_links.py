"""A figure is written to a fresh file renamed over its path, never through a link someone
left there: ``report --plot`` and ``forecast backtest --plot``, often run as root into a
shared results folder, used to let matplotlib open the path itself, so a symlink (or hard
link) planted at it had root overwrite the file it named."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.cli import main
from tests.daemon.helpers import backtest_trace
from tests.daemon.reports.conftest import Run

PNG = b"\x89PNG\r\n\x1a\n"
SECRET = b"root's file: must stay as it is\n"


def _plant(folder: Path, name: str, how: str) -> tuple[Path, Path]:
    """``folder/name`` as a symlink or hard link to a victim file outside ``folder``."""
    victim = folder.parent / f"victim-{how}"
    victim.write_bytes(SECRET)
    path = folder / name
    if how == "symlink":
        path.symlink_to(victim)
    else:
        os.link(victim, path)
    return path, victim


def _assert_replaced(path: Path, victim: Path) -> None:
    assert victim.read_bytes() == SECRET
    assert not path.is_symlink() and path.stat().st_nlink == 1
    assert path.read_bytes().startswith(PNG)


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_report_plot_replaces_a_planted_link(
    demo_state: Path, carbond: Run, tmp_path: Path, how: str
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    path, victim = _plant(folder, "report.png", how)
    carbond("report", "--state-dir", str(demo_state), "--plot", str(path), "--json")
    _assert_replaced(path, victim)
    assert [p.name for p in folder.iterdir()] == ["report.png"]  # no temporary file left


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_backtest_plot_replaces_a_planted_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    trace = backtest_trace(tmp_path / "t.csv", datetime(2024, 1, 1, tzinfo=UTC))
    folder = tmp_path / "shared"
    folder.mkdir()
    path, victim = _plant(folder, "mape.png", how)
    argv = ["forecast", "backtest", "--trace", str(trace), "--zone", "XX", "--plot", str(path)]
    assert main(argv) == 0
    capsys.readouterr()
    _assert_replaced(path, victim)
