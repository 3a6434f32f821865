"""The precision vLLM serves on a GPU (policies.footprint.served)."""

from __future__ import annotations

import pytest

from policies.errors import InvalidWorkloadError
from policies.footprint import DEFAULT_GPU_CATALOG, get_runtime
from policies.footprint.served import served_precision


@pytest.mark.parametrize(
    ("gpu", "runtime", "asked", "served"),
    [
        ("T4", "vllm", "bf16", "fp16"),  # vLLM: bf16 needs compute capability 8.0
        ("V100", "vllm", "BF16", "fp16"),
        ("T4", "vllm-v0", "bf16", "fp16"),
        ("A100-40GB", "vllm", "bf16", "bf16"),
        ("T4", "hf-eager", "bf16", "bf16"),  # eager PyTorch runs it (without tensor cores)
        ("T4", "vllm", "fp8", "fp8"),  # weight-only W8A16 through FP8 Marlin from 7.5
        ("A100-40GB", "vllm", "fp8", "fp8"),  # weight-only from 8.0
        ("H100-SXM", "vllm", "fp8", "fp8"),  # W8A8 from 8.9
        ("V100", "hf-eager", "fp8", "fp8"),  # not vLLM's rule
        ("V100", "vllm", "int4", "int4"),
        ("T4", "vllm", "fp16", "fp16"),
    ],
)
def test_served_precision(gpu: str, runtime: str, asked: str, served: str) -> None:
    got = served_precision(DEFAULT_GPU_CATALOG.get(gpu), get_runtime(runtime), asked)
    assert got.precision == served
    assert bool(got.note) == (served != asked.lower())


def test_the_note_says_why() -> None:
    got = served_precision(DEFAULT_GPU_CATALOG.get("T4"), get_runtime("vllm"), "bf16")
    assert got.note.startswith("bf16 served as fp16") and "8.0" in got.note and "T4" in got.note


@pytest.mark.parametrize("runtime", ["vllm", "vllm-v0", "vllm+study"])
def test_no_fp8_on_volta_under_vllm(runtime: str) -> None:
    with pytest.raises(InvalidWorkloadError, match="no fp8 on V100") as caught:
        served_precision(DEFAULT_GPU_CATALOG.get("V100"), get_runtime(runtime), "fp8")
    assert caught.value.field == "precision" and caught.value.value == "fp8"
