"""The ledger ``make demo`` leaves behind, built once per session, and a CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.cli.demo import run_demo

Run = Callable[..., str]


@pytest.fixture(scope="session")
def demo_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The carbon-aware run's state dir of ``carbond demo`` (its ``ledger.db``)."""
    root = tmp_path_factory.mktemp("demo")
    run_demo(root)
    return root / "carbon-window"


@pytest.fixture
def carbond(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Run:
    """Run ``carbond ARGS`` in-process with no config file, asserting its exit ``code``;
    returns stdout (stderr when ``code`` is not 0)."""
    monkeypatch.delenv("CARBOND_CONFIG", raising=False)
    monkeypatch.setattr("daemon.settings.DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")

    def run(*args: str, code: int = 0) -> str:
        capsys.readouterr()
        got = main(list(args))
        out, err = capsys.readouterr()
        assert got == code, err
        return out if code == 0 else err

    return run
