"""Why a job fits nowhere, with the numbers: every policy rejects with that reason."""

from __future__ import annotations

from dataclasses import replace

import pytest

from policies import get_policy, policy_names
from policies.candidates import estimate_on, unfit_reason
from policies.footprint import Workload
from policies.types import Device, JobSpec
from tests.policies.conftest import NOW, devices, forecast, job

QC_T4 = devices("qc", "CA-QC", "T4", 2)
CA_ADA = devices("ca", "US-CAL-CISO", "RTX6000-Ada", 2)


def _tp(spec: JobSpec, gpus: int) -> JobSpec:
    w = spec.workload
    workload = Workload(w.batch_size, w.input_tokens, w.output_tokens, w.requests, w.precision,
                        tensor_parallel=gpus)  # fmt: skip
    return replace(spec, workload=workload)


@pytest.mark.parametrize(
    ("spec", "devs", "expected"),
    [
        (job("a"), [], "fits no admissible device: no GPU is configured"),
        (job("a"), [replace(d, available=False) for d in QC_T4],
         "fits no admissible device: none of the 2 configured GPU(s) is available"),
        (job("a", regions=("mars",)), QC_T4 + CA_ADA,
         "fits no admissible device: no available GPU in region(s) mars (GPUs are in ca, qc)"),
        (replace(job("a"), gpu_types=("H100-SXM",)), QC_T4 + CA_ADA,
         "fits no admissible device: no available H100-SXM GPU (there are RTX6000-Ada, T4)"),
        (replace(job("a"), min_gpu_memory_gb=80.0), QC_T4 + CA_ADA,
         "fits no admissible device: asks for at least 80 GB of GPU memory, the largest offers "
         "48 GB (RTX6000-Ada)"),
        (_tp(job("a"), 4), QC_T4 + CA_ADA,
         "fits no admissible device: needs 4 GPUs of one type in one region, the largest pool it "
         "fits has 2 (RTX6000-Ada in ca)"),
    ],
)  # fmt: skip
def test_the_reason_names_the_constraint_and_its_numbers(
    spec: JobSpec, devs: list[Device], expected: str
) -> None:
    assert unfit_reason(spec, devs) == expected


def test_a_model_too_big_for_every_gpu_gives_needed_and_offered_memory() -> None:
    spec = job("big", model="llama-3.1-70b")
    largest = estimate_on(spec, CA_ADA[0])  # 48 GB beats the T4's 16 GB
    assert not largest.fits
    assert unfit_reason(spec, QC_T4 + CA_ADA) == (
        f"fits no admissible device: llama-3.1-70b at fp16, batch 8, needs "
        f"{largest.memory_required_gb:.1f} GB per GPU, the largest offers "
        f"{largest.memory_available_gb:.1f} GB usable (RTX6000-Ada)"
    )
    assert largest.memory_required_gb > 100 and largest.memory_available_gb < 48


@pytest.mark.parametrize("name", policy_names())
def test_every_policy_rejects_with_the_numbers(name: str) -> None:
    spec = job("big", model="llama-3.1-70b")
    forecasts = {
        "CA-QC": forecast("CA-QC", [30.0] * 30),
        "US-CAL-CISO": forecast("US-CAL-CISO", [200.0] * 30),
    }
    [decision] = get_policy(name).plan(NOW, [spec], QC_T4 + CA_ADA, forecasts)
    assert decision.action == "reject"
    assert decision.reason == unfit_reason(spec, QC_T4 + CA_ADA)
    assert "GB per GPU, the largest offers" in decision.reason
