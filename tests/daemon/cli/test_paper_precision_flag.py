"""`carbond paper --precision` is read as `carbond estimate --precision` is.

`paper --precision fp7` said `carbond: error: unknown precision 'fp7' (...)` without naming the
flag (estimate: `--precision: unknown precision 'fp7'`), and `--precision FP16` was kept as
typed, so the cells and the note printed `FP16` beside the paper's `fp16`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.daemon.cli.cli_run import run_cli


@pytest.fixture(autouse=True)
def _no_site_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CARBOND_CONFIG", raising=False)
    monkeypatch.setattr("daemon.settings.DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")


def test_an_unknown_precision_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "paper", "--precision", "fp7")
    assert (code, out) == (2, "")
    assert err.startswith("carbond: error: --precision: unknown precision 'fp7' (known: ")
    assert len(err.strip().splitlines()) == 1


def test_the_precision_is_read_in_any_case(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "paper", "--precision", "FP16", "--json")
    assert code == 0
    data = json.loads(out)
    assert {row["precision"] for row in data["cells"]} == {"fp16"}
    assert "FP16" not in " ".join(data["notes"])
