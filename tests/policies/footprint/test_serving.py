"""The continuous-batching steady state (policies.footprint.serving)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from policies.errors import InvalidWorkloadError
from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG, PowerModel, Workload
from policies.footprint.runtimes import get_runtime
from policies.footprint.serving import (
    admitted_batch,
    estimate_continuous,
    kv_capacity_tokens,
    steady_state,
)

H100 = DEFAULT_GPU_CATALOG.get("H100-SXM")
A100 = DEFAULT_GPU_CATALOG.get("A100-40GB")
LLAMA8 = DEFAULT_MODEL_CATALOG.get("llama-3.1-8b")
LLAMA70 = DEFAULT_MODEL_CATALOG.get("llama-3.1-70b")
VLLM = get_runtime("vllm")


def test_batching_amortises_the_weight_read() -> None:
    per_token = [
        steady_state(
            LLAMA8, H100, VLLM, Workload(batch_size=b, input_tokens=200)
        ).energy_per_output_token_j
        for b in (1, 8, 64, 256)
    ]
    assert per_token == sorted(per_token, reverse=True)
    assert per_token[0] > 5 * per_token[-1]


def test_small_batch_decode_is_memory_bound_and_large_batch_compute_bound() -> None:
    small = steady_state(LLAMA8, H100, VLLM, Workload(batch_size=1))
    large = steady_state(LLAMA8, H100, VLLM, Workload(batch_size=1024, input_tokens=2000))
    assert small.memory_s > small.compute_s
    assert large.compute_s > large.memory_s


def test_energy_identities() -> None:
    state = steady_state(LLAMA8, H100, VLLM, Workload(batch_size=32, output_tokens=300))
    assert state.energy_per_output_token_j == pytest.approx(state.power_w * state.step_s / 32)
    assert state.energy_per_request_j == pytest.approx(300 * state.energy_per_output_token_j)
    assert state.throughput_tokens_per_s == pytest.approx(32 / state.step_s)


def test_tensor_parallel_charges_every_gpu_and_adds_communication() -> None:
    one = steady_state(LLAMA70, H100, VLLM, Workload(batch_size=64, tensor_parallel=1))
    four = steady_state(LLAMA70, H100, VLLM, Workload(batch_size=64, tensor_parallel=4))
    assert one.comm_s == 0.0
    assert four.comm_s > 0.0
    assert four.power_w > 2 * one.power_w  # four boards draw power, not one
    assert four.step_s < one.step_s  # the split is faster per step


def test_host_cost_per_sequence_lengthens_steps() -> None:
    slow = replace(VLLM, per_sequence_overhead_s=1e-4)
    wl = Workload(batch_size=256)
    assert steady_state(LLAMA8, H100, slow, wl).step_s == pytest.approx(
        steady_state(LLAMA8, H100, VLLM, wl).step_s + 256e-4
    )


def test_fp8_uses_fp8_tensor_cores_on_hopper_only() -> None:
    wl = Workload(batch_size=1024, input_tokens=1000, precision="fp8")
    bf16 = replace(wl, precision="bf16")
    assert (
        steady_state(LLAMA8, H100, VLLM, wl).compute_s
        < 0.6 * steady_state(LLAMA8, H100, VLLM, bf16).compute_s
    )
    assert steady_state(LLAMA8, A100, VLLM, wl).compute_s == pytest.approx(
        steady_state(LLAMA8, A100, VLLM, bf16).compute_s, rel=0.05
    )


def test_power_stays_between_idle_and_tdp() -> None:
    for b in (1, 16, 512):
        state = steady_state(LLAMA8, H100, VLLM, Workload(batch_size=b), PowerModel())
        assert H100.idle_w <= state.power_w <= H100.tdp_w


def test_kv_capacity_caps_what_fits() -> None:
    wl = Workload(tensor_parallel=1)
    assert kv_capacity_tokens(LLAMA70, A100, VLLM, wl) == 0.0  # 141 GB of weights on 40 GB
    assert kv_capacity_tokens(LLAMA8, H100, VLLM, wl) > 100_000


def test_estimate_continuous_job() -> None:
    wl = Workload(batch_size=32, input_tokens=200, output_tokens=100, requests=320)
    est = estimate_continuous(LLAMA8, H100, VLLM, wl)
    state = steady_state(LLAMA8, H100, VLLM, wl)
    assert est.fits
    assert est.energy_j == pytest.approx(320 * 100 * state.energy_per_output_token_j)
    assert est.duration_s == pytest.approx(320 * 100 * state.step_s / 32)
    assert est.batches == 10
    assert est.batch_latency_s == pytest.approx(100 * state.step_s)


def test_estimate_continuous_reports_out_of_memory() -> None:
    est = estimate_continuous(LLAMA70, A100, VLLM, Workload(batch_size=8))
    assert not est.fits
    assert "out of memory" in est.reason


def test_invalid_workload_is_rejected() -> None:
    with pytest.raises(InvalidWorkloadError, match="batch_size"):
        steady_state(LLAMA8, H100, VLLM, Workload(batch_size=0))


def test_continuous_estimate_splits_its_energy_between_the_phases_as_its_time() -> None:
    est = estimate_continuous(LLAMA8, H100, VLLM, Workload(batch_size=32, requests=200))
    assert est.prefill_energy_j > 0 and est.decode_energy_j > 0
    assert est.prefill_energy_j + est.decode_energy_j == pytest.approx(est.energy_j)
    assert est.prefill_energy_j / est.energy_j == pytest.approx(est.prefill_s / est.duration_s)


@pytest.mark.parametrize("batch", [1, 3, 7, 32, 100])
@pytest.mark.parametrize("requests", [1, 7, 13, 100])
def test_the_total_energy_is_computed_not_the_phases_sum(batch: int, requests: int) -> None:
    """Splitting a continuous-batching job's energy into prefill and decode made its total
    ``prefill_j + (energy_j - prefill_j)``, which is not ``energy_j`` in floating point: a
    replay's June half-day read ``operational_g`` 1157.079072847713 as ...7134. The total is
    the one computed, bit for bit; the phases still add up to it within rounding."""
    workload = Workload(batch_size=batch, requests=requests, input_tokens=333,
                        output_tokens=171)  # fmt: skip
    admitted = admitted_batch(LLAMA8, H100, VLLM, workload)
    state = steady_state(LLAMA8, H100, VLLM, replace(workload, batch_size=admitted))
    est = estimate_continuous(LLAMA8, H100, VLLM, workload)
    assert est.energy_j == requests * 171 * state.energy_per_output_token_j  # exact
    assert est.prefill_energy_j + est.decode_energy_j == pytest.approx(est.energy_j, rel=1e-12)
