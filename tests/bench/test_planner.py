"""bench_planner's policies start from the estimates the bench made (as a running daemon's
hold its queue's), and the bench runs on a small queue."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench import bench_planner
from policies import get_policy
from policies.estimates import EstimateCache
from policies.scoring import SlotGrid, make_pools, score


def test_the_timed_policies_plan_from_the_benchs_estimates() -> None:
    devices, forecasts = bench_planner._cluster()
    jobs = bench_planner._jobs(20)
    made: EstimateCache = {}
    score(jobs, make_pools(devices), forecasts, SlotGrid(bench_planner.NOW, 900, 96), cache=made)
    now = bench_planner.NOW
    warmed = bench_planner.warmed_policy(made).plan(now, jobs, devices, forecasts)
    assert warmed == get_policy("carbon-window").plan(now, jobs, devices, forecasts)
    # what it plans from is what it was given: estimates that fit nowhere reject every job
    unfit = {key: replace(est, fits=False, reason="preloaded") for key, est in made.items()}
    rejected = bench_planner.warmed_policy(unfit).plan(now, jobs, devices, forecasts)
    assert {d.action for d in warmed} != {"reject"} == {d.action for d in rejected}


def test_bench_planner_runs_on_a_small_queue(capsys: pytest.CaptureFixture[str]) -> None:
    bench_planner.main(["--jobs", "40", "--repeats", "2"])
    out = capsys.readouterr().out
    assert "cells: 40 jobs x 64 GPUs x 96 slots" in out
    assert "carbon-window cold tick (every job scored)" in out
    assert "the median of 2 runs from scratch" in out
    assert "carbon-window tick 15 min later, across a slot boundary" in out


def test_bench_planner_refuses_no_repeats_naming_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--repeats 0`` scored the whole queue, then died on an unbound ``run``: it timed nothing."""
    with pytest.raises(SystemExit) as exited:
        bench_planner.main(["--jobs", "40", "--repeats", "0"])
    assert exited.value.code == 2
    assert "argument --repeats: 0: at least 1" in capsys.readouterr().err
