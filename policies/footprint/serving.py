"""Continuous batching: the steady state of a serving engine (vLLM) that keeps ``batch`` requests
in flight.

A continuous-batching engine admits a new request as soon as one finishes, so at steady state
every forward pass ("step") advances ``b`` running requests by one output token each and also
prefills the prompts of the requests that join (chunked prefill). Per step, on each of the ``g``
tensor-parallel GPUs:

- decode work: ``2 * params * b / g`` FLOPs at ``decode_mfu``, plus attention over the mean
  context ``n_in + n_out / 2``; bytes: the weights once plus every sequence's KV cache, at ``mbu``.
- prefill work, amortised: ``b * n_in / n_out`` prompt tokens join per step (each request's
  prompt is prefilled once over its ``n_out`` steps), ``2 * params`` FLOPs each at
  ``prefill_mfu``. The prefill rides on the same weight read as the decode.
- the GPU time is the roofline maximum of compute and memory time, plus two all-reduces per layer
  over the interconnect when ``g > 1``; host time per step (scheduling, sampling) sits between
  steps (``host_overlaps_gpu`` False) or overlaps them.
- every GPU draws the power curve's ``power_w`` over the step (:class:`.power.PowerModel`,
  calibrated, or the study's :class:`.power.StudyPowerModel`).

Energy per output token is step energy over ``b``; energy per request is that times ``n_out``;
the inter-token latency (TPOT) is the step time. This is what the ML.ENERGY benchmark measures
(`bench/validate_energy.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from policies.fast_init import fast_init
from policies.footprint.estimator import (
    Estimate,
    matmul_peak_flops,  # one rule for which tensor-core rate a precision gets
    memory_required_gb,
)
from policies.footprint.gpus import GpuSpec
from policies.footprint.models import ModelSpec
from policies.footprint.power import DEFAULT_POWER, PowerCurve
from policies.footprint.runtimes import RuntimeProfile
from policies.footprint.workload import Workload

__all__ = [
    "SteadyState",
    "admitted_batch",
    "admitted_memory_gb",
    "estimate_continuous",
    "kv_capacity_tokens",
    "steady_state",
]

_GB: Final = 1e9


@fast_init
@dataclass(frozen=True, slots=True)
class SteadyState:
    """One step of a continuous-batching engine at steady state, all ``gpus`` GPUs together.

    Attributes:
        step_s: time of one forward pass = inter-token latency (TPOT), seconds.
        power_w: power of all the GPUs together during the step, watts.
        energy_per_output_token_j: joules per generated token.
        energy_per_request_j: joules per request (``n_out`` tokens plus its prompt's prefill).
        throughput_tokens_per_s: output tokens per second over all requests in flight.
        utilisation: the busy fraction the power model used (0..1).
        prefill_s: compute time of the prompt tokens that join per step (part of ``compute_s``).
        compute_s, memory_s, comm_s, host_s: the parts of the step (compute and memory overlap;
            the step is ``max(compute, memory) + comm`` plus or overlapping ``host``).
    """

    batch: int
    gpus: int
    step_s: float
    power_w: float
    energy_per_output_token_j: float
    energy_per_request_j: float
    throughput_tokens_per_s: float
    utilisation: float
    prefill_s: float
    compute_s: float
    memory_s: float
    comm_s: float
    host_s: float

    @property
    def bound(self) -> str:
        """What limits the step: ``compute``, ``memory``, ``host`` or ``communication``."""
        parts = {
            "compute": self.compute_s,
            "memory": self.memory_s,
            "communication": self.comm_s,
            "host": self.host_s,
        }
        return max(parts, key=lambda name: parts[name])


def steady_state(
    model: ModelSpec,
    gpu: GpuSpec,
    runtime: RuntimeProfile,
    workload: Workload,
    power: PowerCurve = DEFAULT_POWER,
) -> SteadyState:
    """The steady state of serving ``workload`` with ``workload.batch_size`` requests in flight.

    Token counts are the workload's per-request means; ``workload.tensor_parallel`` GPUs serve
    one replica. The memory fit is not checked here (see :func:`estimate_continuous`).

    Raises:
        InvalidWorkloadError: a workload field is out of range.
    """
    workload.validate()
    g = workload.tensor_parallel
    b = workload.batch_size
    n_in, n_out = workload.input_tokens, workload.output_tokens
    kv_precision = "fp32" if workload.precision == "fp32" else "fp16"
    weights = model.weight_bytes(workload.precision) / g
    kv_token = model.kv_bytes_per_token(kv_precision) / g
    q_dim = model.attention_heads * model.head_dim
    peak = matmul_peak_flops(gpu, workload.precision)
    context = n_in + n_out / 2.0
    prefill_tokens = b * n_in / n_out
    decode_flops = (2.0 * model.params * b + 4.0 * model.layers * b * context * q_dim) / g
    prefill_flops = (
        2.0 * model.params * prefill_tokens + 2.0 * model.layers * prefill_tokens * n_in * q_dim
    ) / g
    prefill_s = prefill_flops / (peak * runtime.prefill_mfu)
    compute_s = decode_flops / (peak * runtime.decode_mfu) + prefill_s
    bytes_moved = weights + (b * context + prefill_tokens) * kv_token
    memory_s = bytes_moved / (gpu.memory_bandwidth_gb_s * _GB * runtime.mbu)
    comm_s = 0.0
    if g > 1:
        tokens = b + prefill_tokens
        payload = tokens * model.hidden_size * 2.0 * 2.0 * (g - 1) / g  # fp16 ring all-reduce
        per_layer = runtime.allreduce_latency_s + payload / (gpu.interconnect_gb_s * _GB)
        comm_s = 2.0 * model.layers * per_layer
    host_s = (
        model.layers * runtime.per_layer_overhead_s
        + runtime.per_step_overhead_s
        + b * runtime.per_sequence_overhead_s
    )
    gpu_s = max(compute_s, memory_s) + comm_s
    step_s = max(gpu_s, host_s) if runtime.host_overlaps_gpu else gpu_s + host_s
    u = power.utilisation(compute_s, memory_s, step_s, (decode_flops + prefill_flops) / peak)
    power_w = power.power_w(gpu, u) * g
    per_token = power_w * step_s / b
    return SteadyState(
        batch=b,
        gpus=g,
        step_s=step_s,
        power_w=power_w,
        energy_per_output_token_j=per_token,
        energy_per_request_j=per_token * n_out,
        throughput_tokens_per_s=b / step_s,
        utilisation=u,
        prefill_s=prefill_s,
        compute_s=compute_s,
        memory_s=memory_s,
        comm_s=comm_s,
        host_s=host_s,
    )


def estimate_continuous(
    model: ModelSpec,
    gpu: GpuSpec,
    runtime: RuntimeProfile,
    workload: Workload,
    power: PowerCurve = DEFAULT_POWER,
) -> Estimate:
    """A job of ``workload.request_count`` requests on a continuous-batching engine.

    The engine admits up to ``batch_size`` requests, as many as its KV cache holds
    (:func:`admitted_batch`), and queues the rest: the job takes as many steps as its requests
    have output tokens divided by the admitted concurrency. ``batch_latency_s`` is one
    request's latency (its ``n_out`` steps), ``batches`` the number of request waves. It does
    not fit only when the weights and one request's KV cache do not (``memory_required_gb``
    is then that one request's need; else the admitted requests' as admission counts it,
    :func:`admitted_memory_gb`, within the GPU's usable memory).

    Raises:
        InvalidWorkloadError: a workload field is out of range.
    """
    workload.validate()
    batch = admitted_batch(model, gpu, runtime, workload)
    if batch < 1:
        required = memory_required_gb(model, runtime, workload, 1)
    else:
        required = admitted_memory_gb(model, runtime, workload, batch)
    available = gpu.memory_gb * runtime.usable_memory_fraction
    waves = math.ceil(workload.request_count / max(1, batch))
    g = workload.tensor_parallel

    def result(
        fits: bool,
        reason: str,
        times: tuple[float, float, float],
        energy: tuple[float, float, float],
    ) -> Estimate:
        prefill_s, decode_s, latency_s = times
        energy_j, prefill_j, decode_j = energy  # the total as computed, not the phases' sum
        return Estimate(model.name, gpu.name, runtime.name, workload, g, fits, reason, required,
                        available, prefill_s + decode_s, energy_j, prefill_s,
                        decode_s, waves, latency_s, prefill_j, decode_j, batch)  # fmt: skip

    if batch < 1:
        reason = (
            f"out of memory: {model.name} at {workload.precision} needs {required:.1f} GB per "
            f"GPU for its weights and one request's KV cache, but {gpu.name} x{g} offers "
            f"{available:.1f} GB"
        )
        return result(False, reason, (math.inf, math.inf, math.inf), (math.inf, math.inf, math.inf))
    state = steady_state(model, gpu, runtime, _with_batch(workload, batch), power)
    tokens = workload.request_count * workload.output_tokens
    duration_s = tokens * state.step_s / batch
    prefill_share = _prefill_share(state)
    latency_s = workload.output_tokens * state.step_s
    energy_j = tokens * state.energy_per_output_token_j
    times = (duration_s * prefill_share, duration_s * (1.0 - prefill_share), latency_s)
    # a mixed step draws one power: its energy splits between the phases as its time does
    prefill_j = energy_j * prefill_share
    return result(True, "", times, (energy_j, prefill_j, energy_j - prefill_j))


def admitted_batch(
    model: ModelSpec, gpu: GpuSpec, runtime: RuntimeProfile, workload: Workload
) -> int:
    """Requests a continuous-batching engine keeps in flight: ``batch_size`` (and no more than
    the job's requests), capped by how many requests' KV cache fits beside the weights
    (:func:`kv_capacity_tokens`, each request holding its prompt and on average half its
    output); vLLM queues the others. 0 when not even one request fits. The same cap as the
    validation harness (``bench/prediction.py``)."""
    per_request = workload.input_tokens + workload.output_tokens / 2.0
    fits = int(kv_capacity_tokens(model, gpu, runtime, workload) // per_request)
    return max(0, min(workload.batch_size, workload.request_count, fits))


def admitted_memory_gb(
    model: ModelSpec, runtime: RuntimeProfile, workload: Workload, batch: int
) -> float:
    """Memory per GPU, in GB, that ``batch`` admitted requests take as :func:`admitted_batch`
    counts it: the weights, the runtime's reserve and each request's prompt and half its
    output of KV cache. At most the GPU's usable memory for the admitted batch."""
    g = workload.tensor_parallel
    per_request = workload.input_tokens + workload.output_tokens / 2.0
    kv = batch * per_request * model.kv_bytes_per_token("fp16") / g
    return (model.weight_bytes(workload.precision) / g + kv) / _GB + runtime.memory_reserve_gb


def _with_batch(workload: Workload, batch: int) -> Workload:
    if batch == workload.batch_size:
        return workload
    return Workload(batch, workload.input_tokens, workload.output_tokens, workload.requests,
                    workload.precision, workload.tensor_parallel)  # fmt: skip


def _prefill_share(state: SteadyState) -> float:
    """Share of step time spent on prompt tokens (for the prefill/decode split only)."""
    if state.step_s <= 0:
        return 0.0
    return min(1.0, state.prefill_s / state.step_s)


def kv_capacity_tokens(
    model: ModelSpec, gpu: GpuSpec, runtime: RuntimeProfile, workload: Workload
) -> float:
    """Tokens of KV cache that fit beside the weights on ``workload.tensor_parallel`` GPUs.

    A continuous-batching engine cannot keep more requests in flight than this many tokens
    hold: that caps the effective batch of a configuration (see ``bench/validate_energy.py``).
    """
    g = workload.tensor_parallel
    free = gpu.memory_gb * runtime.usable_memory_fraction - runtime.memory_reserve_gb
    free_bytes = free * _GB - model.weight_bytes(workload.precision) / g
    per_token = model.kv_bytes_per_token("fp16") / g
    return max(0.0, free_bytes / per_token) if per_token > 0 else 0.0
