"""The simulated executor: deterministic durations, failures, cancel and adopt."""

from __future__ import annotations

import json
import signal
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from daemon.executors.base import ExitStatus, LaunchSpec, NotStarted, RunHandle
from daemon.executors.errors import ExecutorError
from daemon.executors.simulated import SimulatedExecutor

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _spec(job_id: str, expected_s: float = 100.0) -> LaunchSpec:
    return LaunchSpec(job_id, ("true",), 1000, 1000, (0,), Path("/nonexistent"), {}, expected_s)


@pytest.mark.parametrize(
    ("truth_factor", "expected_s", "ends_after_s"),
    [(1.0, 100.0, 100.0), (1.5, 100.0, 150.0), (0.5, 3600.0, 1800.0), (1.0, 0.0, 1.0)],
)
def test_job_ends_at_expected_duration_times_truth(
    truth_factor: float, expected_s: float, ends_after_s: float
) -> None:
    executor = SimulatedExecutor(truth_factor=truth_factor)
    handle = executor.launch(_spec("a", expected_s), T0)
    end = T0 + timedelta(seconds=ends_after_s)

    assert executor.poll([handle], end - timedelta(seconds=0.5)) == []
    assert executor.poll([handle], end + timedelta(seconds=30)) == [ExitStatus("a", end, 0)]


def test_a_run_lasts_its_raw_estimate_times_truth_whatever_the_planner_learned() -> None:
    executor = SimulatedExecutor(truth_factor=1.5)
    learned = replace(_spec("a", 150.0), raw_duration_s=100.0)  # planned with a 1.5 factor
    handle = executor.launch(learned, T0)
    end = T0 + timedelta(seconds=150.0)  # 100 s x 1.5, not 150 s x 1.5

    assert executor.poll([handle], end + timedelta(seconds=1)) == [ExitStatus("a", end, 0)]


def test_noise_is_deterministic_per_seed_and_job_not_per_order() -> None:
    one = SimulatedExecutor(noise_sigma=0.3, seed=7)
    two = SimulatedExecutor(noise_sigma=0.3, seed=7)
    other = SimulatedExecutor(noise_sigma=0.3, seed=8)
    ids = [f"job-{i}" for i in range(20)]

    forward = [one.duration_s(i, 100.0) for i in ids]
    backward = [two.duration_s(i, 100.0) for i in reversed(ids)][::-1]

    assert forward == backward
    assert forward != [other.duration_s(i, 100.0) for i in ids]
    assert len(set(forward)) == len(ids)


def test_failure_rate_fails_about_that_share_of_jobs() -> None:
    executor = SimulatedExecutor(failure_rate=0.25, seed=3)
    handles = [executor.launch(_spec(f"j{i}", 10.0), T0) for i in range(400)]

    statuses = executor.poll(handles, T0 + timedelta(hours=1))

    failed = sum(not s.succeeded for s in statuses)
    assert len(statuses) == 400
    assert 60 <= failed <= 140


def test_cancel_ends_the_job_at_the_cancel_time_with_sigterm() -> None:
    executor = SimulatedExecutor()
    handle = executor.launch(_spec("c", 1000.0), T0)
    executor.cancel(handle, T0 + timedelta(seconds=10))

    (status,) = executor.poll([handle], T0 + timedelta(seconds=11))

    assert status.signal == signal.SIGTERM and status.exit_code is None
    assert status.finished_at == T0 + timedelta(seconds=10)
    assert executor.poll([handle], T0 + timedelta(seconds=12)) == []  # reported once


def test_a_new_executor_adopts_running_jobs_and_recovers_ended_ones() -> None:
    before = SimulatedExecutor()
    short = before.launch(_spec("short", 10.0), T0)
    long = before.launch(_spec("long", 1000.0), T0)

    adopted = SimulatedExecutor().adopt([short, long], T0 + timedelta(seconds=60))

    assert adopted == [ExitStatus("short", T0 + timedelta(seconds=10), 0), long]


@pytest.mark.parametrize(
    "kwargs", [{"truth_factor": 0}, {"noise_sigma": -1}, {"failure_rate": 1.5}]
)
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ExecutorError, match=next(iter(kwargs))):
        SimulatedExecutor(**kwargs)  # type: ignore[arg-type]


def test_a_run_without_a_token_never_started() -> None:
    handle = RunHandle("t", "simulated", "", T0)

    (result,) = SimulatedExecutor().adopt([handle], T0)

    assert isinstance(result, NotStarted)


@pytest.mark.parametrize("zone", [UTC, timezone(timedelta(hours=-5, minutes=-30))])
@pytest.mark.parametrize("failure_rate", [0.0, 1.0])
def test_a_token_is_the_json_of_its_end_and_exit_code(zone: timezone, failure_rate: float) -> None:
    executor = SimulatedExecutor(noise_sigma=0.4, failure_rate=failure_rate)
    now = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=zone)
    for job_id in ("a", "b"):
        handle = executor.launch(_spec(job_id, 61.5), now)
        ends_at = now + timedelta(seconds=executor.duration_s(job_id, 61.5))
        expected = {"ends_at": ends_at.isoformat(), "exit_code": int(failure_rate)}
        assert handle.token == json.dumps(expected)  # the stored run row's token, as before


def test_a_token_says_when_its_run_ends() -> None:
    executor = SimulatedExecutor(truth_factor=1.3, noise_sigma=0.5)
    handle = executor.launch(_spec("a", 90.0), T0)
    assert executor.ends_at(handle.token) == T0 + timedelta(seconds=executor.duration_s("a", 90.0))
    with pytest.raises(ExecutorError, match="unreadable"):
        executor.ends_at("not json")
