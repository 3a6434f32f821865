"""The rescue path's tentative plan for a late job with no GPU free now: the first start that
frees and still ends in time with the margin (as the job, re-planned every round, does
start there), not a cheaper later one that its reason would quote but it never reaches."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from policies import JobSpec, get_policy
from policies.candidates import estimate_on
from policies.planner import WindowParameters, plan_window
from tests.policies.conftest import NOW, devices, forecast, job

# Both pools busy: California's GPU (dirty) frees in 1 h, Quebec's (clean) in 2 h.
DEVICES = devices("ca", "US-CAL-CISO", "RTX6000-Ada", 1, busy_until=NOW + timedelta(hours=1))
DEVICES += devices("qc", "CA-QC", "T4", 1, busy_until=NOW + timedelta(hours=2))
FORECASTS = {"CA-QC": forecast("CA-QC", [30.0] * 40),
             "US-CAL-CISO": forecast("US-CAL-CISO", [400.0] * 40)}  # fmt: skip


def _late() -> tuple[JobSpec, float]:
    """A job that ends in time with the 25 % margin from either start, and a guard that puts
    its latest safe start in the past on both GPUs (so only the rescue path plans it)."""
    probe = job("late", requests=2048)
    slowest = max(estimate_on(probe, d).duration_s for d in DEVICES)
    deadline_s = 2 * 3600.0 + 1.25 * slowest + 600.0
    fastest = min(estimate_on(probe, d).duration_s for d in DEVICES)
    guard_s = deadline_s - 1.25 * fastest + 600.0  # latest safe start 10 min ago
    return replace(probe, deadline=NOW + timedelta(seconds=deadline_s)), guard_s


@pytest.mark.parametrize("name", ["carbon-window", "carbon-lookahead", "oracle"])
def test_a_late_job_with_no_gpu_free_is_planned_on_the_first_that_frees(name: str) -> None:
    late, guard_s = _late()
    policy = get_policy(name, guard_s=guard_s)
    (decision,) = policy.plan(NOW, [late], DEVICES, FORECASTS)
    window: WindowParameters = policy.params  # type: ignore[attr-defined]
    assert plan_window(name, NOW, [late], DEVICES, FORECASTS, window) == [decision]  # NumPy
    assert decision.action == "hold", decision.reason
    assert decision.chosen is not None
    assert (decision.chosen.region, decision.chosen.start) == ("ca", NOW + timedelta(hours=1))
    # its latest safe start is before it was submitted: it never had one to plan past
    assert "its deadline is too close to wait" in decision.reason, decision.reason
    # and there it starts, re-planned when California's GPU frees (Quebec's still busy)
    then = NOW + timedelta(hours=1)
    (started,) = get_policy(name, guard_s=guard_s).plan(then, [late], DEVICES, FORECASTS)
    assert started.action == "start" and started.chosen is not None
    assert (started.chosen.region, started.chosen.start) == ("ca", then)


def test_of_the_pools_that_free_first_the_cheapest() -> None:
    """Both GPUs free at the same slot: the cleaner pool's, as a late job's start now."""
    late, guard_s = _late()
    at = NOW + timedelta(hours=1)
    devs = [replace(d, busy_until=at) for d in DEVICES]
    policy = get_policy("carbon-window", guard_s=guard_s)
    (decision,) = policy.plan(NOW, [late], devs, FORECASTS)
    window: WindowParameters = policy.params  # type: ignore[attr-defined]
    assert plan_window("carbon-window", NOW, [late], devs, FORECASTS, window) == [decision]
    assert decision.chosen is not None
    assert (decision.chosen.region, decision.chosen.start) == ("qc", at)
