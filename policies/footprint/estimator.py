"""Energy and time of an LLM inference job on a GPU, before it runs.

Per batch of ``b`` requests with ``n_in`` prompt and ``n_out`` output tokens each:

- **Prefill** is compute-bound: ``2 * params * b * n_in`` FLOPs (plus causal attention) at
  ``prefill_mfu`` of the GPU's peak for the weight precision; it also streams the weights once.
- **Decode** runs ``n_out - 1`` steps (the prefill yields the first token). Each step reads all
  weights plus the KV cache of every sequence in the batch at ``mbu`` of peak bandwidth, and does
  ``2 * params * b`` FLOPs at ``decode_mfu``: the step takes the longer of the two (roofline).
- The runtime adds host time per step (:mod:`.runtimes`); eager loops overlap it with the GPU.
- **Power** lies between idle and TDP: ``idle + (tdp - idle) * u`` where ``u`` is how busy the
  compute units and the memory system are over the step (:class:`PowerModel`).
- **Memory fit**: weights + KV cache + activations + runtime reserve must fit in the GPU's usable
  memory, or the GPU is no candidate (the paper's OOM cells).
- **Tensor parallelism** over ``g`` GPUs splits weights, KV and FLOPs by ``g``, adds two
  all-reduces per layer over the GPU interconnect, and charges every GPU's power.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from policies.fast_init import fast_init
from policies.footprint.gpus import GpuSpec
from policies.footprint.models import ModelSpec, precision_bytes
from policies.footprint.power import DEFAULT_POWER, PowerCurve, PowerModel, StudyPowerModel
from policies.footprint.runtimes import RuntimeProfile
from policies.footprint.workload import Workload

__all__ = [
    "NO_BF16_ARCHITECTURES",
    "Estimate",
    "estimate",
    "matmul_peak_flops",
    "memory_required_gb",
]

_GB: Final = 1e9
_TFLOPS: Final = 1e12
_FP8_ARCHITECTURES: Final = frozenset({"Ada Lovelace", "Hopper", "Blackwell"})
# Before Ampere (compute capability below 8.0): no bf16 tensor cores, and vLLM refuses bf16
# (policies.footprint.served serves it as fp16 there).
NO_BF16_ARCHITECTURES: Final = frozenset({"Turing", "Volta"})


@fast_init
@dataclass(frozen=True, slots=True)
class Estimate:
    """Predicted time and energy of a job on ``gpus`` GPUs of one type.

    ``duration_s`` and ``energy_j`` are ``inf`` when the job does not fit (``fits`` False,
    ``reason`` says why). Energy counts every GPU the job holds. ``prefill_s`` and
    ``prefill_energy_j`` are the prompt passes of all batches (each yields a batch's first
    token), ``decode_s`` and ``decode_energy_j`` the other ``output_tokens - 1`` steps; the two
    energies add up to ``energy_j``. ``batch_in_flight`` is how many requests run at once: the
    batch (at most the job's requests), or on a continuous-batching engine those whose KV cache
    it admits (0 when not even one fits); ``memory_required_gb`` is what they take per GPU.
    """

    model: str
    gpu: str
    runtime: str
    workload: Workload
    gpus: int
    fits: bool
    reason: str
    memory_required_gb: float
    memory_available_gb: float
    duration_s: float
    energy_j: float
    prefill_s: float
    decode_s: float
    batches: int
    batch_latency_s: float
    prefill_energy_j: float
    decode_energy_j: float
    batch_in_flight: int

    @property
    def mean_power_w(self) -> float:
        """Mean power of all the job's GPUs together, in watts."""
        if not self.fits or self.duration_s == 0:
            return math.nan
        return self.energy_j / self.duration_s

    @property
    def output_tokens_total(self) -> int:
        """Output tokens over all requests."""
        return self.workload.request_count * self.workload.output_tokens

    @property
    def energy_per_request_j(self) -> float:
        """Energy per request in joules."""
        return self.energy_j / self.workload.request_count


def matmul_peak_flops(gpu: GpuSpec, precision: str) -> float:
    """Peak FLOP/s for matmuls with weights at ``precision``.

    fp32 runs on CUDA cores (PyTorch leaves TF32 off for matmuls by default). Half precision and
    weight-only int8/int4 (dequantised to fp16) run on tensor cores; bf16 has no tensor-core path
    before Ampere, so Turing and Volta fall back to the fp32 rate. fp8 (weights and activations)
    runs at twice the fp16 rate on Ada, Hopper and Blackwell, and as weight-only elsewhere.
    """
    if precision == "fp32" or (precision == "bf16" and gpu.architecture in NO_BF16_ARCHITECTURES):
        return gpu.fp32_tflops * _TFLOPS
    if precision == "fp8" and gpu.architecture in _FP8_ARCHITECTURES:
        return gpu.int8_tops * _TFLOPS  # FP8 tensor cores run at the INT8 rate
    return gpu.fp16_tflops * _TFLOPS


def _activation_precision(precision: str) -> str:
    return "fp32" if precision == "fp32" else "fp16"


@dataclass(frozen=True, slots=True)
class _Phase:
    duration_s: float
    energy_j: float


def _phase(
    flops: float,
    bytes_moved: float,
    host_s: float,
    comm_s: float,
    peak_flops: float,
    mfu: float,
    gpu: GpuSpec,
    runtime: RuntimeProfile,
    power: PowerCurve,
    gpus: int,
) -> _Phase:
    """One forward pass on each of ``gpus`` GPUs (FLOPs and bytes are per GPU)."""
    t_compute = flops / (peak_flops * mfu)
    t_memory = bytes_moved / (gpu.memory_bandwidth_gb_s * _GB * runtime.mbu)
    t_gpu = max(t_compute, t_memory) + comm_s
    t = max(t_gpu, host_s) if runtime.host_overlaps_gpu else t_gpu + host_s
    u = power.utilisation(t_compute, t_memory, t, flops / peak_flops)
    return _Phase(t, power.power_w(gpu, u) * t * gpus)


def _batch(
    model: ModelSpec,
    gpu: GpuSpec,
    runtime: RuntimeProfile,
    workload: Workload,
    batch: int,
    power: PowerCurve,
) -> tuple[_Phase, _Phase]:
    """Prefill and decode of one batch of ``batch`` requests.

    A pure function of the model, GPU, runtime and power curve (frozen, keyed by value: a
    calibrated curve is a new object per call), the batch size and four of the workload's
    fields, so the answers are kept (:data:`_BATCHES_KEPT` of them): jobs that differ only in
    their request count share every full batch, and their partial last batches repeat too. A
    power curve of another type than carbond's two is computed afresh (it may not hash by value).
    """
    if type(power) not in _KEPT_CURVES:
        return _batch_phases(model, gpu, runtime, workload, batch, power)
    key = (model, gpu, runtime, power, workload.tensor_parallel, workload.input_tokens,
           workload.output_tokens, workload.precision, batch)  # fmt: skip
    phases = _batches.get(key)
    if phases is None:
        phases = _batch_phases(model, gpu, runtime, workload, batch, power)
        if len(_batches) >= _BATCHES_KEPT:
            _batches.clear()
        _batches[key] = phases
    return phases


_BATCHES_KEPT: Final = 8192
_KEPT_CURVES: Final = (PowerModel, StudyPowerModel)
_batches: dict[tuple[object, ...], tuple[_Phase, _Phase]] = {}  # a memo of a pure function


def _batch_phases(
    model: ModelSpec,
    gpu: GpuSpec,
    runtime: RuntimeProfile,
    workload: Workload,
    batch: int,
    power: PowerCurve,
) -> tuple[_Phase, _Phase]:
    """:func:`_batch` computed: reads of ``workload`` only ``tensor_parallel``,
    ``input_tokens``, ``output_tokens`` and ``precision``."""
    g = workload.tensor_parallel
    n_in, n_out = workload.input_tokens, workload.output_tokens
    weights = model.weight_bytes(workload.precision) / g
    kv_token = model.kv_bytes_per_token(_activation_precision(workload.precision)) / g
    q_dim = model.attention_heads * model.head_dim
    peak = matmul_peak_flops(gpu, workload.precision)
    host_s = model.layers * runtime.per_layer_overhead_s + runtime.per_step_overhead_s

    def comm_s(tokens: int) -> float:
        if g == 1:
            return 0.0
        payload = tokens * model.hidden_size * 2.0 * 2.0 * (g - 1) / g  # fp16 ring all-reduce
        per_layer = 2 * (runtime.allreduce_latency_s + payload / (gpu.interconnect_gb_s * _GB))
        return model.layers * per_layer

    prefill = _phase(
        flops=(2.0 * model.params * batch * n_in + 2.0 * model.layers * batch * n_in**2 * q_dim)
        / g,
        bytes_moved=weights + batch * n_in * kv_token,
        host_s=host_s,
        comm_s=comm_s(batch * n_in),
        peak_flops=peak,
        mfu=runtime.prefill_mfu,
        gpu=gpu,
        runtime=runtime,
        power=power,
        gpus=g,
    )
    steps = n_out - 1
    if steps == 0:
        return prefill, _Phase(0.0, 0.0)
    mean_context = n_in + (steps + 1) / 2.0
    step = _phase(
        flops=(2.0 * model.params * batch + 4.0 * model.layers * batch * mean_context * q_dim) / g,
        bytes_moved=weights + batch * mean_context * kv_token,
        host_s=host_s,
        comm_s=comm_s(batch),
        peak_flops=peak,
        mfu=runtime.decode_mfu,
        gpu=gpu,
        runtime=runtime,
        power=power,
        gpus=g,
    )
    return prefill, _Phase(step.duration_s * steps, step.energy_j * steps)


def memory_required_gb(
    model: ModelSpec, runtime: RuntimeProfile, workload: Workload, batch: int
) -> float:
    """Peak device memory per GPU for one batch: weights, full KV cache, activations, reserve."""
    g = workload.tensor_parallel
    act = _activation_precision(workload.precision)
    weights = model.weight_bytes(workload.precision) / g
    tokens = batch * (workload.input_tokens + workload.output_tokens)
    kv = tokens * model.kv_bytes_per_token(act) / g
    logit_rows = batch * workload.input_tokens if runtime.logits_all_positions else batch
    logits = logit_rows * model.vocab_size * 4.0  # fp32 logits
    hidden = batch * workload.input_tokens * model.hidden_size * 8.0 * precision_bytes(act) / g
    return (weights + kv + logits + hidden) / _GB + runtime.memory_reserve_gb


def estimate(
    model: ModelSpec,
    gpu: GpuSpec,
    runtime: RuntimeProfile,
    workload: Workload,
    power: PowerCurve = DEFAULT_POWER,
) -> Estimate:
    """Predict the duration and energy of ``workload`` with ``model`` on ``gpu``.

    Requests run in batches of ``batch_size``; a last partial batch runs at its own size.

    Raises:
        InvalidWorkloadError: a workload field is out of range.
    """
    workload.validate()
    batch = min(workload.batch_size, workload.request_count)
    full, rest = divmod(workload.request_count, batch)
    required = memory_required_gb(model, runtime, workload, batch)
    available = gpu.memory_gb * runtime.usable_memory_fraction
    batches = full + (1 if rest else 0)

    def result(fits: bool, reason: str, times: tuple[float, ...], joules: tuple[float, ...]
               ) -> Estimate:  # fmt: skip
        (prefill_s, decode_s, latency_s), (energy_j, prefill_j, decode_j) = times, joules
        return Estimate(model.name, gpu.name, runtime.name, workload, workload.tensor_parallel,
                        fits, reason, required, available, prefill_s + decode_s, energy_j,
                        prefill_s, decode_s, batches, latency_s, prefill_j, decode_j,
                        batch)  # fmt: skip

    if required > available:
        reason = (
            f"out of memory: {model.name} at {workload.precision}, batch {batch}, needs "
            f"{required:.1f} GB per GPU but {gpu.name} x{workload.tensor_parallel} offers "
            f"{available:.1f} GB"
        )
        return result(False, reason, (math.inf, math.inf, math.inf), (math.inf,) * 3)

    prefill, decode = _batch(model, gpu, runtime, workload, batch, power)
    prefill_s = full * prefill.duration_s
    decode_s = full * decode.duration_s
    energy_j = full * (prefill.energy_j + decode.energy_j)
    prefill_j = full * prefill.energy_j
    decode_j = full * decode.energy_j
    if rest:
        last_prefill, last_decode = _batch(model, gpu, runtime, workload, rest, power)
        prefill_s += last_prefill.duration_s
        decode_s += last_decode.duration_s
        energy_j += last_prefill.energy_j + last_decode.energy_j
        prefill_j += last_prefill.energy_j
        decode_j += last_decode.energy_j
    latency_s = prefill.duration_s + decode.duration_s
    return result(True, "", (prefill_s, decode_s, latency_s), (energy_j, prefill_j, decode_j))
