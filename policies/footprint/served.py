"""The weight precision a serving engine runs on a GPU: one rule for `advise`, `estimate` and the
planner (:func:`.calibration.estimate_interval` prices the precision served).

vLLM (every profile with ``continuous_batching``) checks the GPU's compute capability when it
loads a model:

- **bf16** needs 8.0 (Ampere). On Turing (7.5) and Volta (7.0) vLLM refuses it ("Bfloat16 is
  only supported on GPUs with compute capability of at least 8.0 ... use float16 instead"), so
  a bf16 request is served, and named, as fp16.
- **fp8** runs as W8A8 on FP8 tensor cores from 8.9 (Ada, Hopper, Blackwell), and as
  weight-only W8A16 through the FP8 Marlin kernel below that: from 8.0 (Ampere) since 2024 and
  from 7.5 (Turing) since vLLM's Turing Marlin kernels (late 2025; its FP8 page: "FP8 models
  will run on compute capability >= 7.5 (Turing) as weight-only W8A16"). The estimator prices
  both (:func:`.estimator.matmul_peak_flops`). Volta (7.0) has no fp8 path: refused.

Eager PyTorch (``hf-eager``) runs bf16 on any GPU (without tensor cores before Ampere, as the
estimator prices it) and is left as asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from policies.errors import InvalidWorkloadError
from policies.footprint.estimator import NO_BF16_ARCHITECTURES
from policies.footprint.gpus import GpuSpec
from policies.footprint.runtimes import RuntimeProfile

__all__ = ["ServedPrecision", "served_precision"]

_NO_FP8: Final = frozenset({"Volta"})  # compute capability below 7.5
_CAPABILITY: Final = {"Turing": "7.5", "Volta": "7.0"}


@dataclass(frozen=True, slots=True)
class ServedPrecision:
    """The precision served for the one asked, and a note when they differ (else empty)."""

    precision: str
    note: str = ""


def served_precision(gpu: GpuSpec, runtime: RuntimeProfile, precision: str) -> ServedPrecision:
    """What ``runtime`` serves weights asked at ``precision`` (any case) as on ``gpu``.

    Raises:
        InvalidWorkloadError: (field ``precision``) the engine cannot serve ``precision`` on
            ``gpu`` at all: fp8 on a Volta GPU under vLLM.
    """
    asked = precision.lower()
    if not runtime.continuous_batching:
        return ServedPrecision(asked)
    if asked == "bf16" and gpu.architecture in NO_BF16_ARCHITECTURES:
        return ServedPrecision(
            "fp16",
            f"bf16 served as fp16: vLLM refuses bf16 below compute capability 8.0 "
            f"({gpu.name}: {gpu.architecture}, {_CAPABILITY[gpu.architecture]})",
        )
    if asked == "fp8" and gpu.architecture in _NO_FP8:
        raise InvalidWorkloadError(
            f"vLLM serves no fp8 on {gpu.name} ({gpu.architecture}, compute capability "
            f"{_CAPABILITY[gpu.architecture]}; fp8 needs 7.5): use fp16, int8 or int4",
            field="precision",
            value=precision,
        )
    return ServedPrecision(asked)
