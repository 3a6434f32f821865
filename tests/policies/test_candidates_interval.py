"""The planner's pessimistic duration: interval_on and latest_safe_start."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from policies.candidates import estimate_on, interval_on, latest_safe_start
from policies.footprint import (
    DEFAULT_GPU_CATALOG,
    DEFAULT_MODEL_CATALOG,
    EstimateInterval,
    Workload,
    calibration,
    estimate,
    estimate_interval,
)
from policies.footprint.recalibration import Observation, Recalibration
from policies.footprint.runtimes import get_runtime
from policies.types import Device, JobSpec

NOW = datetime(2026, 1, 1, tzinfo=UTC)
H100 = Device("gpu0", "lab", "CA-QC", DEFAULT_GPU_CATALOG.get("H100-SXM"))
T4 = Device("gpu1", "lab", "CA-QC", DEFAULT_GPU_CATALOG.get("T4"))


def job(runtime: str, deadline: datetime | None, model: str = "llama-3.1-8b") -> JobSpec:
    workload = Workload(batch_size=16, input_tokens=200, output_tokens=200, requests=1600)
    return JobSpec("j", DEFAULT_MODEL_CATALOG.get(model), workload, NOW, deadline, runtime)


def test_latest_safe_start_uses_the_90th_percentile_duration() -> None:
    deadline = NOW + timedelta(hours=4)
    band = interval_on(job("vllm", deadline), H100)
    start = latest_safe_start(job("vllm", deadline), band)
    assert start == deadline - timedelta(seconds=band.duration_s_p90)
    assert start < deadline - timedelta(seconds=band.estimate.duration_s)  # more cautious


@pytest.mark.parametrize(
    ("spec", "device"),
    [(job("vllm", None), H100), (job("vllm", NOW, model="llama-3.1-70b"), T4)],
)
def test_no_safe_start_without_deadline_or_fit(spec: JobSpec, device: Device) -> None:
    assert latest_safe_start(spec, interval_on(spec, device)) is None


def test_eager_jobs_keep_the_uncalibrated_estimate() -> None:
    spec = job("hf-eager", None, model="llama-3.2-1b")
    assert estimate_on(spec, T4) == estimate(
        spec.model, T4.gpu, get_runtime("hf-eager"), spec.workload
    )


def _uncached(spec: JobSpec, device: Device) -> EstimateInterval:
    """The estimate computed afresh (the function the cache wraps)."""
    runtime = get_runtime(spec.runtime)
    return calibration._interval(spec.model, device.gpu, runtime, spec.workload)


@pytest.mark.parametrize("runtime", ["vllm", "hf-eager"])
def test_a_kept_estimate_equals_a_fresh_one_and_follows_its_inputs(runtime: str) -> None:
    spec = job(runtime, None)
    first = interval_on(spec, H100)
    assert interval_on(spec, H100) is first  # kept
    assert first == _uncached(spec, H100)
    longer = replace(spec, workload=replace(spec.workload, output_tokens=400))
    assert interval_on(longer, H100) == _uncached(longer, H100) != first
    assert interval_on(spec, T4) == _uncached(spec, T4) != first
    profile = get_runtime(runtime)  # calibration overrides the MFUs of vllm, not host time
    slower = replace(profile, decode_mfu=profile.decode_mfu / 2,
                     per_step_overhead_s=profile.per_step_overhead_s + 0.01)  # fmt: skip
    assert estimate_interval(spec.model, H100.gpu, slower, spec.workload) != first


def test_recalibration_scales_the_kept_estimate_and_a_new_one_takes_over() -> None:
    spec = job("vllm", None)
    base = interval_on(spec, H100)
    learned = Recalibration()
    for _ in range(3):  # enough evidence: 3 runs, 2x slower, 1.5x the energy, 900 s each
        learned = learned.updated(Observation(spec.model.name, "H100-SXM", 1.0, 1.5, 450, 900))
    scaled = interval_on(spec, H100, learned)
    factor = learned.duration_factor(spec.model.name, "H100-SXM")
    assert factor > 1
    assert scaled.duration_s == pytest.approx(base.duration_s * factor)
    assert interval_on(spec, H100) is base  # the kept estimate itself is unscaled
    again = learned.updated(Observation(spec.model.name, "H100-SXM", 1.0, 1.0, 450, 450))
    rescaled = interval_on(spec, H100, again)
    assert rescaled.duration_s == pytest.approx(
        base.duration_s * again.duration_factor(spec.model.name, "H100-SXM")
    )
    assert rescaled.duration_s != scaled.duration_s
