"""Which ``run-now`` the savings are measured against: the plain one (no parameters) when one
ran, whatever comes first in ``--policy``; else the first ``run-now`` given."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.replay.driver import JobOutcome, PolicyRun
from daemon.replay.solvers import Solved, bound_row
from daemon.replay.summary import summarise
from policies.bound import LowerBound
from tests.daemon.replay.conftest import START
from tests.daemon.replay.replay_argv import input_options


def _run(policy: str, params: dict[str, float], grams: float) -> PolicyRun:
    start = START + timedelta(minutes=1)
    outcome = JobOutcome("j1", start, start + timedelta(hours=1), "r", "Z", "T4", start,
                         start + timedelta(minutes=10), 3.6e6, 100.0, 100.0, grams,
                         0.0)  # fmt: skip
    return PolicyRun(policy, params, (outcome,), 0, 0)


def test_the_plain_run_now_is_the_baseline_wherever_it_comes() -> None:
    """``--policy run-now:lifetime_years=3,run-now,carbon-window`` measured every saving
    against the first run named run-now, the one with another embodied accounting: the plain
    run-now read as saving over run-now, and the bound's saving too."""
    runs = [
        _run("run-now", {"lifetime_years": 3.0}, 12.0),
        _run("run-now", {}, 10.0),
        _run("carbon-window", {}, 9.0),
    ]
    rows = summarise(runs)
    assert [r["savings_vs_run_now"] for r in rows] == pytest.approx([-0.2, 0.0, 0.1])
    bound = bound_row(Solved(LowerBound(8.0, 1, (), 1, None, 10, 5), 0.0), rows)
    assert bound["savings_vs_run_now"] == pytest.approx(0.2)


def test_without_a_plain_run_now_the_first_run_now_is_the_baseline() -> None:
    runs = [_run("run-now", {"lifetime_years": 3.0}, 12.0), _run("carbon-window", {}, 9.0)]
    assert [r["savings_vs_run_now"] for r in summarise(runs)] == pytest.approx([0.0, 0.25])


def test_the_split_and_the_temporal_potential_take_the_plain_run_now(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The spatial / temporal split and the temporal-only potential took the first run-now
    too: the plain one's row split a saving it does not have."""
    argv = ["replay", *input_options(trace, cluster_file, intensity_files), "--days", "0.1",
            "--slack", "4h", "--model", "llama-1b", "--requests-per-job", "64", "--tick", "300",
            "--workers", "1", "--bound", "--json"]  # fmt: skip
    assert main([*argv, "--policy", "run-now"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert main([*argv, "--policy", "run-now:lifetime_years=1,run-now"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["total_g"] != rows[1]["total_g"]  # the accounting differs: a real test
    plain = rows[1]
    assert (plain["savings_vs_run_now"], plain["spatial_saving"], plain["temporal_saving"]) == (
        0.0, 0.0, 0.0
    )  # fmt: skip
    assert rows[2]["policy"] == "lp-bound"
    assert rows[2]["savings_vs_run_now"] == alone[1]["savings_vs_run_now"]
    assert rows[2]["temporal_only_potential"] == alone[1]["temporal_only_potential"]
