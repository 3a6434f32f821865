from __future__ import annotations

import math
from dataclasses import replace

import pytest

from policies.errors import InvalidWorkloadError, UnknownModelError
from policies.footprint.models import DEFAULT_MODEL_CATALOG, ModelSpec, precision_bytes

REQUIRED = ("llama-3.2-1b", "llama-3.2-3b", "llama-2-7b", "llama-3.1-8b", "mistral-7b",
            "llama-3.1-70b")  # fmt: skip


def test_catalog_has_every_required_model() -> None:
    assert set(REQUIRED) <= set(DEFAULT_MODEL_CATALOG.names())


@pytest.mark.parametrize(
    ("alias", "name"),
    [("llama-1b", "llama-3.2-1b"), ("LLAMA-3B", "llama-3.2-3b"), ("llama-7b", "llama-2-7b")],
)
def test_paper_aliases(alias: str, name: str) -> None:
    assert DEFAULT_MODEL_CATALOG.get(alias).name == name


def test_unknown_model_names_the_value() -> None:
    with pytest.raises(UnknownModelError, match="'gpt-17'"):
        DEFAULT_MODEL_CATALOG.get("gpt-17")


@pytest.mark.parametrize(
    ("precision", "nbytes"), [("fp32", 4), ("FP16", 2), ("bf16", 2), ("int8", 1), ("int4", 0.5)]
)
def test_precision_bytes(precision: str, nbytes: float) -> None:
    assert precision_bytes(precision) == nbytes


def test_unknown_precision() -> None:
    with pytest.raises(InvalidWorkloadError, match="'fp8x'"):
        precision_bytes("fp8x")


def test_kv_cache_uses_grouped_query_heads() -> None:
    llama2 = DEFAULT_MODEL_CATALOG.get("llama-2-7b")  # 32 KV heads
    llama31 = DEFAULT_MODEL_CATALOG.get("llama-3.1-8b")  # 8 KV heads
    assert llama2.kv_bytes_per_token("fp16") == 2 * 32 * 32 * 128 * 2
    assert llama2.kv_bytes_per_token("fp16") == 4 * llama31.kv_bytes_per_token("fp16")


@pytest.mark.parametrize("params_b", [1.0, 7.0, 70.0])
def test_unknown_model_from_params_is_llama_shaped(params_b: float) -> None:
    model = ModelSpec.from_params(params_b)
    assert model.params == params_b * 1e9
    known = {1.0: 16, 7.0: 32, 70.0: 80}[params_b]
    assert abs(model.layers - known) / known < 0.1


@pytest.mark.parametrize("params_b", [0, -1, math.nan, math.inf, 1e300, 10_000.5])
def test_from_params_rejects_non_positive_and_non_finite(params_b: float) -> None:
    """1e300 was an OverflowError traceback (carbond estimate --params-b 1e300)."""
    with pytest.raises(InvalidWorkloadError, match="params_b"):
        ModelSpec.from_params(params_b)


@pytest.mark.parametrize(
    ("model", "gpus", "message"),
    [
        ("llama-3.1-8b", 3, "llama-3.1-8b's 32 attention heads (8 KV heads) do not split over 3 "
                            "GPUs, which vLLM refuses: use 1, 2, 4, 8, 16 or 32"),
        ("codegemma-2b", 16, "codegemma-2b's 8 attention heads (1 KV head) do not split over "
                             "16 GPUs, which vLLM refuses: use 1, 2, 4 or 8"),
    ],
)  # fmt: skip
def test_check_split_names_the_heads_and_the_sizes_that_split(
    model: str, gpus: int, message: str
) -> None:
    spec = DEFAULT_MODEL_CATALOG.get(model)
    with pytest.raises(InvalidWorkloadError) as info:
        spec.check_split(gpus)
    assert str(info.value) == message
    spec.check_split(4)
    ModelSpec.from_params(8).check_split(3)  # a stand-in's heads are made up


@pytest.mark.parametrize(
    ("heads", "kv_heads", "message"),
    [(3, 2, "m's 3 attention heads (2 KV heads) do not split over 2 GPUs, which vLLM refuses: "
            "run it on 1 GPU, unsplit"),
     (1, 1, "m's 1 attention head (1 KV head) does not split over 2 GPUs, which vLLM refuses: "
            "run it on 1 GPU, unsplit")],
)  # fmt: skip
def test_check_split_of_a_model_that_runs_only_unsplit(
    heads: int, kv_heads: int, message: str
) -> None:
    """A model whose only tensor-parallel size is 1 read "...which vLLM refuses: use  or 1"."""
    spec = replace(
        DEFAULT_MODEL_CATALOG.get("llama-3.1-8b"), name="m", attention_heads=heads,
        kv_heads=kv_heads,
    )  # fmt: skip
    with pytest.raises(InvalidWorkloadError) as info:
        spec.check_split(2)
    assert str(info.value) == message
    spec.check_split(1)


@pytest.mark.parametrize("gpus", [0, -2])
def test_check_split_refuses_fewer_than_one_gpu(gpus: int) -> None:
    """0 GPUs was a ZeroDivisionError traceback, not the workload error callers catch."""
    with pytest.raises(InvalidWorkloadError, match=f"at least 1, got {gpus}"):
        DEFAULT_MODEL_CATALOG.get("llama-3.1-8b").check_split(gpus)
