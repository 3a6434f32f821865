"""The look-ahead's round plan: never above the greedy's as planned, the greedy's own where no
job can wait, and the LP's plan where it is cheaper."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from policies import Decision, Device, JobSpec, get_policy
from tests.policies.conftest import NOW, FakeForecast, devices, forecast, job


def _instance(
    seed: int, hours: tuple[float, float]
) -> tuple[list[Device], dict[str, FakeForecast], list[JobSpec]]:
    """Random jobs on two clean T4s and two RTX 6000 Ada in a grid that swings over the day."""
    rng = np.random.default_rng(seed)
    devs = devices("qc", "CA-QC", "T4", 2) + devices("ca", "US-CAL-CISO", "RTX6000-Ada", 2)
    fcs = {
        "CA-QC": forecast("CA-QC", list(rng.uniform(20, 60, 30))),
        "US-CAL-CISO": forecast("US-CAL-CISO", list(rng.uniform(80, 500, 30))),
    }
    jobs = [
        job(
            f"j{i}",
            hours=float(rng.uniform(*hours)),
            requests=int(rng.integers(512, 8192)),
            regions=("qc", "ca"),
        )
        for i in range(12)
    ]
    return devs, fcs, jobs


def _planned_g(decisions: list[Decision]) -> float:
    return sum(d.chosen.total_g for d in decisions if d.chosen is not None)


@pytest.mark.parametrize("seed", range(6))
def test_the_round_plan_is_never_above_the_greedys(seed: int) -> None:
    """Twelve jobs competing for two clean T4s over a day: the look-ahead's plan for the queue
    costs at most the greedy's, as planned (no pessimistic bound: planning cost = grams)."""
    devs, fcs, jobs = _instance(seed, (3.0, 12.0))
    greedy = get_policy("carbon-window").plan(NOW, jobs, devs, fcs)
    joint = get_policy("carbon-lookahead").plan(NOW, jobs, devs, fcs)
    assert all(d.action != "reject" for d in joint)
    assert _planned_g(joint) <= _planned_g(greedy) * (1 + 1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_with_no_job_free_to_wait_the_plan_is_the_greedys(seed: int) -> None:
    """Every job due within the hour (latest safe start nearer than ``urgent_s``): nothing to
    look ahead into, so the look-ahead decides exactly as ``carbon-window``."""
    devs, fcs, jobs = _instance(seed, (0.9, 1.2))
    greedy = get_policy("carbon-window").plan(NOW, jobs, devs, fcs)
    joint = get_policy("carbon-lookahead").plan(NOW, jobs, devs, fcs)
    assert [(d.action, d.chosen) for d in joint] == [(d.action, d.chosen) for d in greedy]


def test_a_cheaper_plan_by_the_lp_replaces_the_greedys() -> None:
    """The two-job case of test_builtin: the LP's plan (both on the clean T4, one after the
    other) is cheaper than the greedy's (the short job on the dirty GPU), so it is taken."""
    devs = devices("qc", "CA-QC", "T4", 1) + devices("pace", "US-NW-PACE", "RTX6000-Ada", 1)
    fcs = {"CA-QC": forecast("CA-QC", [30.0] * 30),
           "US-NW-PACE": forecast("US-NW-PACE", [600.0] * 30)}  # fmt: skip
    long = job("long", hours=12.0, requests=16384, regions=("qc", "pace"))
    short = job("short", hours=3.0, requests=512, regions=("qc", "pace"))
    short = type(short)(short.job_id, short.model, short.workload, NOW,
                        NOW + timedelta(hours=1.7), regions=short.regions)  # fmt: skip
    greedy = get_policy("carbon-window").plan(NOW, [long, short], devs, fcs)
    joint = get_policy("carbon-lookahead").plan(NOW, [long, short], devs, fcs)
    assert _planned_g(joint) < _planned_g(greedy)
    assert {d.chosen.region for d in joint if d.chosen is not None} == {"qc"}
