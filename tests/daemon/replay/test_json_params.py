"""A policy parameter that is not a finite number (``urgent_s=inf``: plan every job by
urgency) keeps its value in ``replay``'s and ``tune``'s ``--json``, as the table and
``--policy`` write it: until 2026-12-07 the JSON's cleaning turned it into ``null``, so the
``tune --grid urgent_s=inf,1800`` row the table printed as ``inf`` read ``"urgent_s": null``
(the parameter left at its default, 3600, to a reader)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli import main
from tests.daemon.replay.replay_argv import input_options

_SMALL = ["--days", "0.5", "--slack", "4h", "--model", "llama-1b", "--requests-per-job", "64",
          "--tick", "300", "--json"]  # fmt: skip


def test_tune_json_keeps_an_infinite_grid_value(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    argv = ["tune", *input_options(trace, cluster_file, intensity_files), *_SMALL,
            "--grid", "urgent_s=inf,1800"]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["params"] for r in rows] == [{"urgent_s": "inf"}, {"urgent_s": 1800}]


def test_replay_json_keeps_an_infinite_policy_parameter(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    argv = ["replay", *input_options(trace, cluster_file, intensity_files), *_SMALL,
            "--policy", "run-now,carbon-window:urgent_s=inf"]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["policy"], r["params"]) for r in rows] == [
        ("run-now", {}), ("carbon-window", {"urgent_s": "inf"}),
    ]  # fmt: skip
