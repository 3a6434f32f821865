"""The planner prices a job at the precision its engine serves on the GPU (as ``carbond
estimate`` and ``advise`` do, :mod:`policies.footprint.served`): vLLM serves bf16 as fp16 on a
T4 or V100 and no fp8 on a V100."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from policies import get_policy, policy_names
from policies.candidates import estimate_on, unfit_reason
from policies.estimates import estimate_matrix
from policies.footprint import DEFAULT_MODEL_CATALOG, Workload
from policies.scoring import make_pools
from policies.types import Device, JobSpec
from tests.policies.conftest import NOW, devices, forecast, job

QC_T4 = devices("qc", "CA-QC", "T4", 2)
CA_V100 = devices("ca", "US-CAL-CISO", "V100", 2)
CA_A100 = devices("ca", "US-CAL-CISO", "A100-40GB", 2)
FORECASTS = {
    "CA-QC": forecast("CA-QC", [30.0] * 30),
    "US-CAL-CISO": forecast("US-CAL-CISO", [200.0] * 30),
}


def _at(precision: str, runtime: str = "vllm") -> JobSpec:
    spec = job("j")
    w = spec.workload
    workload = Workload(w.batch_size, w.input_tokens, w.output_tokens, w.requests, precision)
    return replace(spec, workload=workload, runtime=runtime)


@pytest.mark.parametrize("runtime", ["vllm", "vllm-v0"])
@pytest.mark.parametrize("gpus", [QC_T4, CA_V100])
def test_a_vllm_bf16_job_on_a_gpu_without_bf16_is_priced_as_fp16(
    runtime: str, gpus: list[Device]
) -> None:
    bf16 = estimate_on(_at("bf16", runtime), gpus[0])
    fp16 = estimate_on(_at("fp16", runtime), gpus[0])
    assert bf16.workload.precision == "fp16"
    assert (bf16.fits, bf16.duration_s, bf16.energy_j) == (True, fp16.duration_s, fp16.energy_j)
    duration, energy, ok = estimate_matrix([_at("bf16", runtime)], make_pools(gpus))
    assert ok.all()
    assert (duration[0, 0], energy[0, 0]) == (fp16.duration_s, fp16.energy_j)


def test_eager_pytorch_keeps_bf16_on_a_t4_and_ampere_keeps_it_under_vllm() -> None:
    eager = estimate_on(_at("bf16", "hf-eager"), QC_T4[0])
    assert eager.workload.precision == "bf16"  # without tensor cores: the fp32 rate
    assert eager.duration_s > estimate_on(_at("fp16", "hf-eager"), QC_T4[0]).duration_s
    assert estimate_on(_at("bf16"), CA_A100[0]).workload.precision == "bf16"


def test_a_vllm_fp8_job_is_not_placed_on_a_v100() -> None:
    spec = _at("fp8")
    est = estimate_on(spec, CA_V100[0])
    assert not est.fits
    assert est.duration_s == est.energy_j == np.inf
    assert est.reason.startswith("vLLM serves no fp8 on V100 (Volta, compute capability 7.0")
    assert estimate_on(spec, QC_T4[0]).fits  # weight-only W8A16 on Turing
    pools = make_pools(QC_T4 + CA_V100)
    _, _, ok = estimate_matrix([spec], pools)
    assert dict(zip([p.gpu.name for p in pools], ok[0], strict=True)) == {"T4": True, "V100": False}


@pytest.mark.parametrize("name", policy_names())
def test_every_policy_places_fp8_off_the_v100_or_rejects_it_saying_why(name: str) -> None:
    spec = replace(_at("fp8"), deadline=None)
    [placed] = get_policy(name).plan(NOW, [spec], QC_T4 + CA_V100, FORECASTS)
    assert placed.action != "reject"
    assert placed.chosen is None or placed.chosen.gpu == "T4"
    [rejected] = get_policy(name).plan(NOW, [spec], CA_V100, FORECASTS)
    assert rejected.action == "reject"
    assert (
        rejected.reason
        == unfit_reason(spec, CA_V100)
        == (
            "fits no admissible device: vLLM serves no fp8 on V100 (Volta, compute capability "
            "7.0; fp8 needs 7.5): use fp16, int8 or int4"
        )
    )


def test_too_big_for_the_t4_and_fp8_on_the_v100_names_both() -> None:
    spec = replace(_at("fp8"), model=DEFAULT_MODEL_CATALOG.get("gemma-2-27b"))
    t4 = estimate_on(spec, QC_T4[0])
    assert t4.memory_required_gb > t4.memory_available_gb  # 27B at 1 byte: ~28 GB
    assert unfit_reason(spec, QC_T4 + CA_V100) == (
        f"fits no admissible device: gemma-2-27b at fp8, batch 8, needs "
        f"{t4.memory_required_gb:.1f} GB per GPU, the largest offers "
        f"{t4.memory_available_gb:.1f} GB usable (T4); vLLM serves no fp8 on V100 (Volta, "
        "compute capability 7.0; fp8 needs 7.5): use fp16, int8 or int4"
    )


def test_a_gpu_both_unserving_and_too_small_is_named_for_its_precision() -> None:
    # 70B at fp8 (~70 GB) overflows a 32 GB V100 too, but the V100 cannot run fp8 at all (vLLM
    # refuses it at load, before memory): its memory at fp8 is no figure a user can act on.
    spec = replace(_at("fp8"), model=DEFAULT_MODEL_CATALOG.get("llama-3.1-70b"))
    v100 = estimate_on(spec, CA_V100[0])
    assert v100.memory_required_gb > v100.memory_available_gb
    unserved = (
        "vLLM serves no fp8 on V100 (Volta, compute capability 7.0; fp8 needs 7.5): use fp16, "
        "int8 or int4"
    )
    assert unfit_reason(spec, CA_V100) == f"fits no admissible device: {unserved}"
    t4 = estimate_on(spec, QC_T4[0])  # servable (W8A16) and too small: its memory is named
    assert unfit_reason(spec, QC_T4 + CA_V100) == (
        f"fits no admissible device: llama-3.1-70b at fp8, batch 8, needs "
        f"{t4.memory_required_gb:.1f} GB per GPU, the largest offers "
        f"{t4.memory_available_gb:.1f} GB usable (T4); {unserved}"
    )
    for name in policy_names():
        [rejected] = get_policy(name).plan(NOW, [spec], QC_T4 + CA_V100, FORECASTS)
        assert rejected.reason == unfit_reason(spec, QC_T4 + CA_V100)
