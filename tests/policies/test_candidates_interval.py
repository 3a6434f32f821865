"""The planner's pessimistic duration: interval_on and latest_safe_start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from policies.candidates import estimate_on, interval_on, latest_safe_start
from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG, Workload, estimate
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
