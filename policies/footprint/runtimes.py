"""Serving-runtime profiles: how close a runtime gets to the GPU's limits, and what it costs per
step on the host.

An eager ``generate`` loop (Hugging Face transformers without compilation) launches every kernel
from Python: at small batch a decode step is bound by that launch time, not by the GPU, and the
GPU idles between kernels. A CUDA-graph engine (vLLM) replays a captured graph: the host cost per
step is small and paid once per step, not per layer.

All numbers are named fields so that a site (or :mod:`policies.footprint.calibration`) can
replace them; the defaults are round figures from public measurements of these runtimes, to be
refined by calibration against measured energy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final

from policies.errors import InvalidWorkloadError
from policies.fast_init import fast_init

__all__ = ["DEFAULT_RUNTIMES", "STUDY_SUFFIX", "RuntimeProfile", "get_runtime"]


@fast_init
@dataclass(frozen=True, slots=True)
class RuntimeProfile:
    """How a serving runtime uses a GPU.

    Attributes:
        prefill_mfu: fraction of peak FLOP/s that prefill GEMMs reach (model-FLOPs utilisation).
        decode_mfu: fraction of peak FLOP/s that decode steps reach when compute-bound.
        mbu: fraction of peak memory bandwidth that decode steps reach (bandwidth utilisation).
        per_layer_overhead_s: host time to launch one layer's kernels, per forward pass.
        per_step_overhead_s: host time per forward pass besides layers (sampling, scheduling).
        per_sequence_overhead_s: host time per forward pass per sequence in the batch
            (scheduling, sampling and detokenising each running request); continuous-batching
            model only (:mod:`.serving`).
        fitted_host_overhead: calibration replaces the host times with fitted ones (the
            engine the fit set measured); otherwise they stay as written here.
        host_overlaps_gpu: True when the host launches asynchronously ahead of the GPU (eager
            loops: a step takes the longer of host and GPU time); False when host work sits
            between steps (a step takes host + GPU time).
        logits_all_positions: the prefill materialises fp32 logits for every prompt position
            (Hugging Face ``generate``) rather than for the last position only.
        memory_reserve_gb: device memory taken by the CUDA context and allocator, per GPU.
        usable_memory_fraction: fraction of the board's memory the runtime may fill.
        allreduce_latency_s: fixed latency of one tensor-parallel all-reduce.
        continuous_batching: the engine admits requests as others finish and keeps the batch
            full (vLLM); :mod:`.serving` models its steady state and :mod:`.calibration` fits
            it to measurements.
    """

    name: str
    description: str
    prefill_mfu: float
    decode_mfu: float
    mbu: float
    per_layer_overhead_s: float
    per_step_overhead_s: float
    host_overlaps_gpu: bool
    logits_all_positions: bool
    memory_reserve_gb: float = 0.5
    usable_memory_fraction: float = 0.95
    allreduce_latency_s: float = 10e-6
    continuous_batching: bool = False
    per_sequence_overhead_s: float = 0.0
    fitted_host_overhead: bool = False
    power_model: str = "calibrated"  # or "study": the simulation study's MFU power curve


DEFAULT_RUNTIMES: Final[Mapping[str, RuntimeProfile]] = MappingProxyType(
    {
        "hf-eager": RuntimeProfile(
            name="hf-eager",
            description="Hugging Face transformers generate(), eager PyTorch (the paper's setup)",
            prefill_mfu=0.45,
            decode_mfu=0.45,
            mbu=0.75,
            per_layer_overhead_s=1.0e-3,
            per_step_overhead_s=2.0e-3,
            host_overlaps_gpu=True,
            logits_all_positions=True,
        ),
        # vLLM's V1 engine (default since 0.8, 2025): the scheduler no longer costs time per
        # running sequence; the host adds a fixed ~1 ms per step (the profile's prior, not
        # fitted). The GPU-side numbers (utilisations, power) come from calibration.
        "vllm": RuntimeProfile(
            name="vllm",
            description="vLLM (V1 engine) with CUDA graphs and continuous batching",
            prefill_mfu=0.6,
            decode_mfu=0.5,
            mbu=0.8,
            per_layer_overhead_s=0.0,
            per_step_overhead_s=1.0e-3,
            host_overlaps_gpu=False,
            logits_all_positions=False,
            usable_memory_fraction=0.9,
            continuous_batching=True,
        ),
        # vLLM's V0 engine (0.5/0.6, 2024, what ML.ENERGY v2 measured): the Python scheduler
        # and sampler run between GPU steps at a cost per step and per running sequence;
        # calibration fits both (``fitted_host_overhead``).
        "vllm-v0": RuntimeProfile(
            name="vllm-v0",
            description="vLLM V0 engine (2024): host scheduling between steps",
            prefill_mfu=0.6,
            decode_mfu=0.5,
            mbu=0.8,
            per_layer_overhead_s=0.0,
            per_step_overhead_s=5.0e-3,
            host_overlaps_gpu=False,
            logits_all_positions=False,
            usable_memory_fraction=0.9,
            continuous_batching=True,
            per_sequence_overhead_s=1e-4,
            fitted_host_overhead=True,
        ),
    }
)


STUDY_SUFFIX: Final = "+study"


def get_runtime(name: str) -> RuntimeProfile:
    """The built-in runtime profile called ``name``; ``<name>+study`` is that profile with the
    simulation study's power curve (``power_model = "study"``) instead of the calibrated one.

    Raises:
        InvalidWorkloadError: no such profile.
    """
    key = name.strip().lower()
    base = key.removesuffix(STUDY_SUFFIX)
    try:
        profile = DEFAULT_RUNTIMES[base]
    except KeyError:
        known = ", ".join(DEFAULT_RUNTIMES)
        raise InvalidWorkloadError(
            f"unknown runtime {name!r} (known: {known}; any of them +study)"
        ) from None
    if key == base:
        return profile
    return replace(profile, name=key, power_model="study")
