"""The dense models added for the ML.ENERGY validation resolve and have consistent shapes."""

from __future__ import annotations

import pytest

from policies.footprint import DEFAULT_MODEL_CATALOG, precision_bytes

MEASURED_IDS = [
    "meta-llama/Meta-Llama-3.1-8B-Instruct", "meta-llama/Meta-Llama-3.1-70B-Instruct",
    "meta-llama/Meta-Llama-3.1-405B-Instruct", "meta-llama/Llama-3.3-70B-Instruct",
    "google/gemma-2-2b-it", "google/gemma-2-9b-it", "google/gemma-2-27b-it",
    "google/gemma-3-12b-it", "google/gemma-3-27b-it", "google/codegemma-1.1-2b",
    "google/codegemma-7b", "microsoft/Phi-3-mini-4k-instruct", "microsoft/Phi-3-small-8k-instruct",
    "microsoft/Phi-3-medium-4k-instruct", "mistralai/Mistral-7B-Instruct-v0.3",
    "mistralai/Mistral-Nemo-Instruct-2407", "mistralai/Mistral-Large-Instruct-2407",
    "codellama/CodeLlama-7b-hf", "codellama/CodeLlama-13b-hf", "codellama/CodeLlama-34b-hf",
    "codellama/CodeLlama-70b-hf", "bigcode/starcoder2-3b", "bigcode/starcoder2-7b",
    "bigcode/starcoder2-15b", "Qwen/Qwen3-8B", "Qwen/Qwen3-14B", "Qwen/Qwen3-32B",
]  # fmt: skip


@pytest.mark.parametrize("model_id", MEASURED_IDS)
def test_measured_model_resolves_with_a_consistent_shape(model_id: str) -> None:
    spec = DEFAULT_MODEL_CATALOG.get(model_id)
    assert spec.attention_heads % spec.kv_heads == 0  # grouped-query attention groups
    assert spec.kv_heads <= spec.attention_heads
    # a transformer block holds at least the attention projections: params >= layers * that
    attention = spec.hidden_size * spec.attention_heads * spec.head_dim * 2
    assert spec.params > spec.layers * attention
    # and no more than ~40 hidden^2 per layer plus (untied) embeddings
    ceiling = spec.layers * 40 * spec.hidden_size**2 + 2 * spec.vocab_size * spec.hidden_size
    assert spec.params < ceiling


def test_names_are_unique_across_aliases() -> None:
    keys = [k.lower() for spec in DEFAULT_MODEL_CATALOG for k in (spec.name, *spec.aliases)]
    assert len(keys) == len(set(keys))


def test_fp8_is_one_byte() -> None:
    assert precision_bytes("fp8") == 1.0
