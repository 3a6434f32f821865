"""What a held job's reason says when it never had a later start to plan: a job without a
deadline, or one due too soon to wait, read "planned past its latest safe start T" with T
before the job was even submitted (its deadline less the run, margin and guard; for no
deadline, the round's own slot), and a plan costing what run-now does read "(0% above
run-now)"."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from policies import get_policy
from policies.planner import WindowParameters, plan_window
from policies.reasons import saving
from policies.types import Alternative
from tests.policies.conftest import NOW, devices, forecast, job

# The only GPU is busy for an hour: nothing starts now, the rescue plans its first free slot.
BUSY = devices("qc", "CA-QC", "T4", 1, busy_until=NOW + timedelta(hours=1))
FORECASTS = {"CA-QC": forecast("CA-QC", [30.0] * 40)}
POLICIES = ["carbon-window", "carbon-lookahead", "oracle"]


def _held(name: str, hours: float | None) -> str:
    submitted = NOW - timedelta(seconds=30)
    spec = job("j", hours=hours, submitted=submitted)
    if hours is not None:  # due 90 s after it was submitted
        spec = replace(spec, deadline=submitted + timedelta(seconds=90))
    policy = get_policy(name)
    (decision,) = policy.plan(NOW, [spec], BUSY, FORECASTS)
    window: WindowParameters = policy.params  # type: ignore[attr-defined]
    assert plan_window(name, NOW, [spec], BUSY, FORECASTS, window) == [decision]  # NumPy too
    assert decision.action == "hold" and decision.chosen is not None, decision.reason
    assert decision.chosen.start == NOW + timedelta(hours=1)
    for text in re.findall(r"latest safe start (\S+):", decision.reason):
        assert datetime.fromisoformat(text) >= submitted.replace(second=0), decision.reason
    return decision.reason


@pytest.mark.parametrize("name", POLICIES)
def test_a_job_without_a_deadline_is_held_with_no_latest_start_quoted(name: str) -> None:
    reason = _held(name, None)
    assert "latest safe start" not in reason, reason
    assert reason.endswith(
        "; no deadline, so no later start is planned: starts on the first suitable GPU that frees"
    ), reason


@pytest.mark.parametrize("name", POLICIES)
def test_a_job_due_too_soon_to_wait_says_so(name: str) -> None:
    reason = _held(name, 0.0)
    assert "latest safe start" not in reason, reason
    assert reason.endswith(
        "; its deadline is too close to wait for a cheaper start: starts on the first suitable "
        "GPU that frees"
    ), reason


def _alt(total_g: float) -> Alternative:
    return Alternative(("d",), "r", "g", NOW, 60.0, 1.0, 1.0, total_g, 0.0)


def test_a_share_that_rounds_to_zero_is_not_quoted() -> None:
    assert saving(_alt(100.4), _alt(100.0)) == ""  # was " (0% above run-now)"
    assert saving(_alt(99.6), _alt(100.0)) == ""
    assert saving(_alt(100.0), _alt(100.0)) == ""
    assert saving(_alt(99.4), _alt(100.0)) == " (1% below run-now)"
    assert saving(_alt(100.6), _alt(100.0)) == " (1% above run-now)"
