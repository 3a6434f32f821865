"""The daemon learning a simulated estimator error: runs that last ``truth_factor`` times their
raw estimate teach a duration factor of ``truth_factor``, and the simulated executor keeps
timing runs from the raw estimate, so the factor converges instead of compounding (each launch
already carries the learned factor in its planned duration)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from daemon.assemble import build_daemon
from daemon.demo import DEMO_START, demo_settings
from daemon.queue import QUEUE_NAME, append_line
from daemon.settings import RegionSettings
from policies.footprint import DEFAULT_MODEL_CATALOG

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
