from __future__ import annotations

import dataclasses
import math

import pytest

from policies.errors import InvalidWorkloadError
from policies.footprint.estimator import DEFAULT_POWER, Workload, estimate, memory_required_gb
from policies.footprint.gpus import DEFAULT_GPU_CATALOG
from policies.footprint.models import DEFAULT_MODEL_CATALOG
from policies.footprint.runtimes import get_runtime

LLAMA_1B = DEFAULT_MODEL_CATALOG.get("llama-1b")
LLAMA_70B = DEFAULT_MODEL_CATALOG.get("llama-3.1-70b")
H100 = DEFAULT_GPU_CATALOG.get("H100-SXM")
T4 = DEFAULT_GPU_CATALOG.get("T4")
VLLM = get_runtime("vllm")
EAGER = get_runtime("hf-eager")


@pytest.mark.parametrize(
    ("field", "value"),
    [("batch_size", 0), ("input_tokens", -1), ("output_tokens", 0), ("requests", 0),
     ("tensor_parallel", 0)],
)  # fmt: skip
def test_invalid_workload_names_the_field(field: str, value: int) -> None:
    work = dataclasses.replace(Workload(), **{field: value})
    with pytest.raises(InvalidWorkloadError, match=field):
        estimate(LLAMA_1B, H100, VLLM, work)


def test_power_stays_between_idle_and_tdp() -> None:
    for batch in (1, 8, 64, 256):
        est = estimate(LLAMA_1B, H100, VLLM, Workload(batch_size=batch))
        assert H100.idle_w <= est.mean_power_w <= H100.tdp_w


def test_more_output_tokens_cost_more_time_and_energy() -> None:
    short = estimate(LLAMA_1B, H100, VLLM, Workload(output_tokens=50))
    long = estimate(LLAMA_1B, H100, VLLM, Workload(output_tokens=500))
    assert long.duration_s > short.duration_s
    assert long.energy_j > short.energy_j


def test_requests_run_in_batches_with_a_partial_last_batch() -> None:
    one = estimate(LLAMA_1B, H100, VLLM, Workload(batch_size=8, requests=8))
    many = estimate(LLAMA_1B, H100, VLLM, Workload(batch_size=8, requests=20))
    assert many.batches == 3
    assert 2 * one.duration_s < many.duration_s < 3 * one.duration_s


def test_batching_lowers_energy_per_request() -> None:
    per_request = [
        estimate(LLAMA_1B, H100, VLLM, Workload(batch_size=b)).energy_per_request_j
        for b in (1, 4, 16, 64)
    ]
    assert per_request == sorted(per_request, reverse=True)


def test_decode_is_memory_bound_at_batch_one() -> None:
    """At batch 1 a decode step takes about (weights / bandwidth) on a CUDA-graph runtime."""
    work = Workload(batch_size=1, input_tokens=1, output_tokens=1001, precision="fp16")
    est = estimate(LLAMA_1B, H100, VLLM, work)
    step_s = est.decode_s / 1000
    weights_s = LLAMA_1B.weight_bytes("fp16") / (H100.memory_bandwidth_gb_s * 1e9 * VLLM.mbu)
    assert step_s == pytest.approx(weights_s + VLLM.per_step_overhead_s, rel=0.05)


def test_quantised_weights_decode_faster() -> None:
    times = [
        estimate(LLAMA_1B, H100, VLLM, Workload(precision=p)).decode_s
        for p in ("fp16", "int8", "int4")
    ]
    assert times == sorted(times, reverse=True)


def test_model_too_big_does_not_fit_with_a_reason() -> None:
    est = estimate(LLAMA_70B, T4, VLLM, Workload())
    assert not est.fits
    assert "out of memory" in est.reason and "T4" in est.reason
    assert math.isinf(est.energy_j) and math.isinf(est.duration_s)


def test_tensor_parallel_makes_a_big_model_fit_and_charges_every_gpu() -> None:
    assert not estimate(LLAMA_70B, H100, VLLM, Workload(precision="bf16")).fits
    tp4 = estimate(LLAMA_70B, H100, VLLM, Workload(precision="bf16", tensor_parallel=4))
    assert tp4.fits and tp4.gpus == 4
    assert tp4.mean_power_w > H100.idle_w * 4


def test_kv_cache_grows_memory_with_batch_and_context() -> None:
    small = memory_required_gb(LLAMA_1B, VLLM, Workload(batch_size=1), 1)
    big = memory_required_gb(LLAMA_1B, VLLM, Workload(batch_size=64, input_tokens=2048), 64)
    assert big > small + 5


def test_eager_runtime_is_launch_bound_at_small_batch() -> None:
    """hf-eager pays host time per layer: same work, slower and less busy than vllm."""
    work = Workload(batch_size=1, precision="fp16")
    eager = estimate(LLAMA_1B, H100, EAGER, work)
    graphs = estimate(LLAMA_1B, H100, VLLM, work)
    assert eager.duration_s > 2 * graphs.duration_s
    assert eager.mean_power_w < graphs.mean_power_w


def test_power_model_is_used() -> None:
    hot = dataclasses.replace(DEFAULT_POWER, memory_weight=1.0, active_floor=0.5)
    base = estimate(LLAMA_1B, H100, VLLM, Workload())
    hotter = estimate(LLAMA_1B, H100, VLLM, Workload(), power=hot)
    assert hotter.energy_j > base.energy_j
    assert hotter.duration_s == base.duration_s
