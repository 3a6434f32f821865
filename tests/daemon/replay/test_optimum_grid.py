"""``replay --optimum`` at a tick finer than the MIP's grid: a policy can start between the
grid's instants and come in under the grid's best schedule (a negative ``gap_to_optimum``).
The row says whether the comparison is like for like, and why a gap may be negative."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.replay.driver import ReplaySetup, replay_policy
from daemon.replay.inputs import load_setup, parse_duration_s
from daemon.replay.solvers import on_grid, optimum_row, solve_optimum
from daemon.replay.summary import summarise
from policies.optimum import GRID_S
from tests.daemon.replay.conftest import START, replay_inputs, write_azure, write_intensity

_CLUSTER = """
[[regions]]
name = "california"
zone = "US-CAL-CISO"
gpus = [{ type = "T4", count = 1 }]
"""


def _late_arrival(tmp_path: Path, tick_s: int) -> ReplaySetup:
    """One job on one GPU, arriving at 00:58 with 2 h of slack, when the grid's last clean
    instant (100 g/kWh in the hour from 00:00, 400 after) is 00:55, before it arrived."""
    (tmp_path / "cluster.toml").write_text(_CLUSTER, encoding="utf-8")
    begin = START - timedelta(days=8)
    hours = [100.0 if h == 8 * 24 else 400.0 for h in range(11 * 24)]
    intensity = write_intensity(tmp_path / "ciso.csv", "US-CAL-CISO", hours, begin)
    trace = write_azure(tmp_path / "trace.csv", [(i * 0.1, 800, 150) for i in range(64)])
    inputs = replay_inputs(trace, tmp_path / "cluster.toml", [intensity], 0.1)
    setup = load_setup(replace(inputs, tick_s=tick_s), parse_duration_s("2h"))
    job = setup.jobs[0]
    arrival = START + timedelta(minutes=58)
    moved = replace(job, submitted_at=arrival, deadline=arrival + (job.deadline - job.submitted_at))
    return replace(setup, jobs=(moved,))


def test_a_policy_under_the_grid_optimum_is_explained(tmp_path: Path) -> None:
    setup = _late_arrival(tmp_path, tick_s=60)
    rows = summarise([replay_policy(setup, "run-now")])
    assert rows[0]["deadline_misses"] == 0
    row = optimum_row(solve_optimum(setup), rows, ticks=(setup.start, setup.tick_s))
    assert row["optimal"] and rows[0]["gap_to_optimum"] < -0.5  # run-now started at 00:58
    assert row["like_for_like"] is False
    assert "a negative gap_to_optimum: a schedule off the grid" in row["note"]
    assert f"--tick {GRID_S:g} compares like for like" in row["note"]


def test_on_the_replays_own_grid_no_gap_is_negative(tmp_path: Path) -> None:
    """The same replay with the MIP's starts on its 60 s tick: like for like, the gap >= 0."""
    setup = _late_arrival(tmp_path, tick_s=60)
    rows = summarise([replay_policy(setup, "run-now")])
    row = optimum_row(solve_optimum(setup, grid_s=60), rows, ticks=(setup.start, setup.tick_s))
    assert row["like_for_like"] is True and "like for like" not in row["note"]
    assert rows[0]["gap_to_optimum"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("tick_s", "offset_s", "like"),
    [(300, 0, True), (600, 0, True), (60, 0, False), (300, 60, False), (450, 0, False)],
)
def test_ticks_on_the_grid(tick_s: int, offset_s: int, like: bool) -> None:
    assert on_grid(START + timedelta(seconds=offset_s), tick_s, 300.0) is like
