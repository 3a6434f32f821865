"""The daemon learning a simulated estimator error: runs that last ``truth_factor`` times their
raw estimate teach a duration factor of ``truth_factor``, and the simulated executor keeps
timing runs from the raw estimate, so the factor converges instead of compounding (each launch
already carries the learned factor in its planned duration)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from daemon.assemble import Daemon, build_daemon, rebuild_service
from daemon.cli.demo import DEMO_START, demo_settings
from daemon.queue import QUEUE_NAME, append_line
from daemon.settings import RegionSettings, Settings
from daemon.testing import FakeClock
from policies import Decision, Device, JobSpec, Policy, ZoneIntensity
from policies.footprint import DEFAULT_MODEL_CATALOG
from policies.footprint.recalibration import Recalibration, RecalibrationFactor

TRUTH = 1.5
MODEL = DEFAULT_MODEL_CATALOG.get("llama-1b").name  # the factors are kept by catalog name


def test_a_learned_duration_factor_converges_to_the_simulated_truth(tmp_path: Path) -> None:
    base = demo_settings(tmp_path, "run-now")
    settings = base.model_copy(update={
        "regions": (RegionSettings(name="qc", zone="CA-QC", executor="simulated", gpus=("T4",)),),
        "executors": base.executors.model_copy(update={
            "simulated": base.executors.simulated.model_copy(update={"truth_factor": TRUTH}),
        }),
    })  # fmt: skip
    now = DEMO_START

    def gpu_clock() -> float:  # the simulated GPUs follow the simulated clock
        return (now - DEMO_START).total_seconds()

    daemon = build_daemon(settings, gpu_clock=gpu_clock)
    try:
        service = daemon.service
        assert service.measurement is not None
        service.start(now)
        jobs = [f"j{n}" for n in range(10)]
        for job_id in jobs:  # one GPU: the jobs run one after another
            append_line(tmp_path / QUEUE_NAME, {"id": job_id, "model": "llama-1b",
                                                "requests": 200, "deadline": "+3d",
                                                "command": ["infer", job_id]})  # fmt: skip
        for _ in range(5000):
            service.tick(now)
            if all(daemon.ledger.job(j).state == "succeeded" for j in jobs):
                break
            now += timedelta(seconds=30)
        else:
            pytest.fail("the jobs did not all finish")
        factor = service.measurement.recalibration.duration_factor(MODEL, "T4")
        runs = [daemon.ledger.run(j) for j in jobs]
    finally:
        daemon.close()
    assert factor == pytest.approx(TRUTH, rel=0.05)  # in use, and not compounded
    raw_s = runs[0].expected_duration_s if runs[0] is not None else 0.0  # nothing learned yet
    for run in runs:
        assert run is not None and run.started_at is not None and run.finished_at is not None
        true_s = (run.finished_at - run.started_at).total_seconds()
        assert true_s == pytest.approx(TRUTH * raw_s, rel=0.02)  # every run: truth x raw
    last = runs[-1]
    assert last is not None  # planned with the learned factor:
    assert last.expected_duration_s == pytest.approx(TRUTH * raw_s, rel=0.05)


class _SlowPolicy:
    """A policy whose plan takes ``plan_s`` seconds of the (fake) wall clock."""

    def __init__(self, policy: Policy, advance: Callable[[float], object], plan_s: float) -> None:
        self._policy, self._advance, self._plan_s = policy, advance, plan_s

    @property
    def name(self) -> str:
        return self._policy.name

    def plan(
        self,
        now: datetime,
        jobs: Sequence[JobSpec],
        devices: Sequence[Device],
        forecasts: Mapping[str, ZoneIntensity],
    ) -> list[Decision]:
        decisions = self._policy.plan(now, jobs, devices, forecasts)
        self._advance(self._plan_s)
        return decisions


def _one_simulated_t4(tmp_path: Path) -> tuple[Settings, FakeClock, Daemon]:
    """The demo's run-now settings with one simulated T4 in Quebec, a fake clock at the
    demo's start, and a daemon whose GPUs and launches follow that clock (not started)."""
    base = demo_settings(tmp_path, "run-now")
    settings = base.model_copy(update={
        "regions": (RegionSettings(name="qc", zone="CA-QC", executor="simulated", gpus=("T4",)),),
    })  # fmt: skip
    clock = FakeClock(DEMO_START)
    return settings, clock, build_daemon(settings, gpu_clock=clock.monotonic(), launch_clock=clock)


def test_a_live_launch_starts_when_planning_is_done_not_when_the_round_began(
    tmp_path: Path,
) -> None:
    # carbond run: a first plan took 25 s, and a simulated job estimated at 2.7 s had ended
    # before it was launched: the next reconcile found it ended 1 ms after its meter started,
    # and the recalibration learned 0.25 (the clip) for energy and duration from that one run
    settings, clock, daemon = _one_simulated_t4(tmp_path)
    try:
        service = daemon.service
        service.policy = _SlowPolicy(service.policy, clock.advance, 25.0)
        service.start(clock())
        append_line(tmp_path / QUEUE_NAME, {"id": "tiny", "model": "llama-1b", "requests": 1,
                                            "deadline": "+1h", "command": ["infer"]})  # fmt: skip
        service.ingest(clock())
        planned_at = clock()
        service.plan(planned_at)  # as the loop runs its steps: each at the wall clock
        launched_at = clock()
        assert launched_at == planned_at + timedelta(seconds=25)
        service.reconcile(clock())
        assert daemon.ledger.job("tiny").state == "running"  # it lasts its estimate from now
        started = daemon.ledger.run("tiny")
        assert started is not None
        raw_s = started.expected_duration_s
        clock.advance(raw_s + 1.0)
        service.reconcile(clock())
        run = daemon.ledger.run("tiny")
        outcome = daemon.ledger.outcome("tiny")
        learned = service.learning.recalibration.get(MODEL, "T4")
        assert rebuild_service(daemon, settings, None).launch_clock is clock  # kept on SIGHUP
    finally:
        daemon.close()
    assert run is not None and run.started_at == launched_at and run.finished_at is not None
    assert (run.finished_at - run.started_at).total_seconds() == pytest.approx(raw_s)
    assert outcome is not None and outcome["duration_s"] == pytest.approx(raw_s)
    assert learned.samples == 1
    assert learned.duration_factor == pytest.approx(1.0, rel=0.01)
    assert learned.energy_factor == pytest.approx(1.0, rel=0.05)


def test_a_sub_second_job_lasts_its_estimate_and_teaches_no_factor(tmp_path: Path) -> None:
    # carbond run: jobs estimated at 0.18 s lasted the simulated executor's 1 s floor, so each
    # measured 5.5 times its estimated time and energy, and the pair learned factors of 4 (the
    # clip) that its longer jobs were planned with once it had enough evidence
    _, clock, daemon = _one_simulated_t4(tmp_path)
    jobs = [f"tiny{n}" for n in range(3)]
    try:
        service = daemon.service
        service.start(clock())
        for job_id in jobs:
            append_line(tmp_path / QUEUE_NAME, {"id": job_id, "model": "llama-1b", "requests": 1,
                                                "output_tokens": 10, "deadline": "+1h",
                                                "command": ["infer"]})  # fmt: skip
        for _ in range(100):
            service.tick(clock())
            if all(daemon.ledger.job(j).state == "succeeded" for j in jobs):
                break
            clock.advance(2.0)
        else:
            pytest.fail("the jobs did not all finish")
        runs = [daemon.ledger.run(j) for j in jobs]
        learned = service.learning.recalibration.get(MODEL, "T4")
    finally:
        daemon.close()
    for run in runs:
        assert run is not None and run.started_at is not None and run.finished_at is not None
        assert run.expected_duration_s < 1.0
        true_s = (run.finished_at - run.started_at).total_seconds()
        assert true_s == pytest.approx(run.expected_duration_s, rel=0.01)
    assert learned.samples == 3
    assert learned.duration_factor == pytest.approx(1.0, rel=0.01)
    assert learned.energy_factor == pytest.approx(1.0, rel=0.05)


def test_a_launch_carries_the_raw_estimate_of_the_factor_its_runtime_was_planned_with(
    tmp_path: Path,
) -> None:
    # the pair (llama-1b, T4) learned durations 2x the estimate from eager runs, its vLLM runs
    # 1x: a vLLM job is planned on vLLM's factor (1), but its launch divided the planned
    # duration by the pair's (2), so the simulated executor ran it for half its estimate
    _, clock, daemon = _one_simulated_t4(tmp_path)
    try:
        service = daemon.service
        service.start(clock())
        learned = (RecalibrationFactor(MODEL, "T4", 5, 0.0, math.log(2.0), 3600.0),
                   RecalibrationFactor(MODEL, "T4", 5, 0.0, 0.0, 3600.0, runtime="vllm",
                                       precision="fp16"))  # fmt: skip
        service.learning.recalibration = Recalibration.from_factors(
            learned, service.learning.recalibration.config
        )
        append_line(tmp_path / QUEUE_NAME, {"id": "v", "model": "llama-1b", "requests": 200,
                                            "runtime": "vllm", "deadline": "+1h",
                                            "command": ["infer"]})  # fmt: skip
        for _ in range(500):
            service.tick(clock())
            if daemon.ledger.job("v").state == "succeeded":
                break
            clock.advance(2.0)
        else:
            pytest.fail("the job did not finish")
        run = daemon.ledger.run("v")
    finally:
        daemon.close()
    assert run is not None and run.started_at is not None and run.finished_at is not None
    true_s = (run.finished_at - run.started_at).total_seconds()
    assert true_s == pytest.approx(run.expected_duration_s, rel=0.01)  # planned x 1, not / 2
