"""The model catalog: the shape of each LLM, which is what its energy and memory depend on.

Shapes are from each model's published ``config.json``. ``params`` counts every weight
(embeddings included). The paper's generic names map to concrete models: ``llama-1b`` ->
Llama 3.2 1B, ``llama-3b`` -> Llama 3.2 3B, ``llama-7b`` -> Llama 2 7B. A model the catalog does
not know can be described by its parameter count alone (:meth:`ModelSpec.from_params`).

Only dense decoder-only transformers are modelled: mixture-of-experts models (Mixtral, Qwen3
A3B/A22B, DeepSeek, gpt-oss, Llama 4) read a different subset of weights per token and are out of
scope, as are Mamba hybrids (Nemotron-H) and vision-language models.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, get_args

from policies.errors import InvalidWorkloadError, UnknownModelError

__all__ = [
    "DEFAULT_MODEL_CATALOG",
    "MAX_PARAMS_B",
    "PRECISION_BYTES",
    "ModelCatalog",
    "ModelSpec",
    "Precision",
    "precision_bytes",
]

MAX_PARAMS_B: Final = 10_000  # billions: 25 times the largest catalog model; past it, overflow

Precision = Literal["fp32", "fp16", "bf16", "fp8", "int8", "int4"]
PRECISION_BYTES: Final = MappingProxyType(
    {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
)


def precision_bytes(precision: str) -> float:
    """Bytes per weight for ``precision``.

    Raises:
        InvalidWorkloadError: an unknown precision name.
    """
    try:
        return PRECISION_BYTES[precision.lower()]
    except KeyError:
        known = ", ".join(get_args(Precision))
        raise InvalidWorkloadError(
            f"unknown precision {precision!r} (known: {known})",
            field="precision",
            value=repr(precision),
        ) from None


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A decoder-only transformer's shape."""

    name: str
    params: float
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    native_precision: str = "bf16"
    aliases: tuple[str, ...] = ()
    shape_known: bool = True  # False: a stand-in of a size (:meth:`from_params`)

    @property
    def params_b(self) -> float:
        """Parameters in billions."""
        return self.params / 1e9

    def weight_bytes(self, precision: str) -> float:
        """Bytes of all weights at ``precision``."""
        return self.params * precision_bytes(precision)

    def kv_bytes_per_token(self, kv_precision: str) -> float:
        """Bytes of KV cache one token occupies across all layers (keys and values)."""
        return 2.0 * self.layers * self.kv_heads * self.head_dim * precision_bytes(kv_precision)

    def splits_over(self, gpus: int) -> bool:
        """Whether a serving engine can shard this model's attention over ``gpus``
        tensor-parallel GPUs: each GPU takes a whole number of query heads, and of KV heads
        (or, with fewer KV heads than GPUs, each KV head is replicated a whole number of
        times), as vLLM requires. A stand-in's heads are made up, so it is not refused."""
        if not self.shape_known or gpus == 1:
            return True
        if self.attention_heads % gpus:
            return False
        if self.kv_heads >= gpus:
            return self.kv_heads % gpus == 0
        return gpus % self.kv_heads == 0

    def check_split(self, gpus: int) -> None:
        """Refuse ``gpus`` tensor-parallel GPUs this model does not split over
        (:meth:`splits_over`), naming the sizes it does split over, up to 64.

        Raises:
            InvalidWorkloadError: the heads do not split over ``gpus``.
        """
        if gpus < 1:  # splits_over would divide by it
            raise InvalidWorkloadError(f"tensor-parallel GPUs must be at least 1, got {gpus}")
        if self.splits_over(gpus):
            return
        *sizes, last = (str(n) for n in range(1, 65) if self.splits_over(n))
        heads = _count(self.attention_heads, "attention head")
        kv = _count(self.kv_heads, "KV head")
        use = f"use {', '.join(sizes)} or {last}" if sizes else "run it on 1 GPU, unsplit"
        raise InvalidWorkloadError(
            f"{self.name}'s {heads} ({kv}) {'does' if self.attention_heads == 1 else 'do'} "
            f"not split over {gpus} GPUs, which vLLM refuses: "
            f"{use}"
        )

    @classmethod
    def from_params(cls, params_b: float) -> ModelSpec:
        """A Llama-shaped stand-in for an unknown model of ``params_b`` billion parameters.

        Depth follows the Llama family (16 layers at 1B, 32 at 7B, 80 at 70B: about
        ``16 * params_b ** 0.37``); grouped-query attention with 8 KV heads of 128 dims.

        Raises:
            InvalidWorkloadError: ``params_b`` is not a positive number up to
                :data:`MAX_PARAMS_B`.
        """
        if not 0 < params_b <= MAX_PARAMS_B:
            allowed = f"positive and at most {MAX_PARAMS_B:,} (billion)"
            raise InvalidWorkloadError(
                f"params_b must be {allowed}, got {params_b}",
                field="params_b",
                value=str(params_b),
                allowed=allowed,
            )
        layers = max(2, round(16 * params_b**0.37))
        hidden = max(256, 128 * round(math.sqrt(params_b * 1e9 / (12 * layers)) / 128))
        return cls(
            name=f"custom-{params_b:g}b",
            params=params_b * 1e9,
            layers=layers,
            hidden_size=hidden,
            attention_heads=max(1, hidden // 128),
            kv_heads=8,
            head_dim=128,
            vocab_size=32_000,
            shape_known=False,
        )


def _normalise(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


_MODELS: Final = (
    ModelSpec("llama-3.2-1b", 1.236e9, 16, 2048, 32, 8, 64, 128_256, "bf16",
              ("llama-1b", "meta-llama/llama-3.2-1b", "meta-llama/llama-3.2-1b-instruct")),
    ModelSpec("llama-3.2-3b", 3.213e9, 28, 3072, 24, 8, 128, 128_256, "bf16",
              ("llama-3b", "meta-llama/llama-3.2-3b", "meta-llama/llama-3.2-3b-instruct")),
    ModelSpec("llama-2-7b", 6.738e9, 32, 4096, 32, 32, 128, 32_000, "fp16",
              ("llama-7b", "meta-llama/llama-2-7b-hf", "meta-llama/llama-2-7b-chat-hf")),
    ModelSpec("llama-3.1-8b", 8.030e9, 32, 4096, 32, 8, 128, 128_256, "bf16",
              ("llama-8b", "meta-llama/llama-3.1-8b", "meta-llama/llama-3.1-8b-instruct",
               "meta-llama/meta-llama-3.1-8b-instruct")),
    ModelSpec("mistral-7b", 7.248e9, 32, 4096, 32, 8, 128, 32_000, "bf16",
              ("mistralai/mistral-7b-v0.1", "mistralai/mistral-7b-instruct-v0.3")),
    ModelSpec("llama-3.1-70b", 70.55e9, 80, 8192, 64, 8, 128, 128_256, "bf16",
              ("llama-70b", "meta-llama/llama-3.1-70b", "meta-llama/llama-3.1-70b-instruct",
               "meta-llama/meta-llama-3.1-70b-instruct")),
    # The dense models of the ML.ENERGY leaderboard v2/v3 (``bench/validate_energy.py``).
    # Gemma's sliding-window layers and Phi-3-small's block-sparse attention are modelled as
    # full attention (their windows exceed the measured contexts, or nearly so).
    ModelSpec("llama-3.3-70b", 70.55e9, 80, 8192, 64, 8, 128, 128_256, "bf16",
              ("meta-llama/llama-3.3-70b-instruct",)),
    ModelSpec("llama-3.1-405b", 405.85e9, 126, 16384, 128, 8, 128, 128_256, "bf16",
              ("llama-405b", "meta-llama/llama-3.1-405b-instruct",
               "meta-llama/meta-llama-3.1-405b-instruct")),
    ModelSpec("codellama-7b", 6.738e9, 32, 4096, 32, 32, 128, 32_016, "bf16",
              ("codellama/codellama-7b-hf",)),
    ModelSpec("codellama-13b", 13.016e9, 40, 5120, 40, 40, 128, 32_016, "bf16",
              ("codellama/codellama-13b-hf",)),
    ModelSpec("codellama-34b", 33.744e9, 48, 8192, 64, 8, 128, 32_000, "bf16",
              ("codellama/codellama-34b-hf",)),
    ModelSpec("codellama-70b", 68.977e9, 80, 8192, 64, 8, 128, 32_016, "bf16",
              ("codellama/codellama-70b-hf",)),
    ModelSpec("mistral-nemo-12b", 12.248e9, 40, 5120, 32, 8, 128, 131_072, "bf16",
              ("mistralai/mistral-nemo-instruct-2407", "mistral-nemo")),
    ModelSpec("mistral-large-2407", 122.61e9, 88, 12288, 96, 8, 128, 32_768, "bf16",
              ("mistralai/mistral-large-instruct-2407", "mistral-large")),
    ModelSpec("gemma-2-2b", 2.614e9, 26, 2304, 8, 4, 256, 256_000, "bf16",
              ("google/gemma-2-2b-it",)),
    ModelSpec("gemma-2-9b", 9.242e9, 42, 3584, 16, 8, 256, 256_000, "bf16",
              ("google/gemma-2-9b-it",)),
    ModelSpec("gemma-2-27b", 27.227e9, 46, 4608, 32, 16, 128, 256_000, "bf16",
              ("google/gemma-2-27b-it",)),
    ModelSpec("gemma-3-12b", 12.187e9, 48, 3840, 16, 8, 256, 262_208, "bf16",
              ("google/gemma-3-12b-it",)),
    ModelSpec("gemma-3-27b", 27.432e9, 62, 5376, 32, 16, 128, 262_208, "bf16",
              ("google/gemma-3-27b-it",)),
    ModelSpec("codegemma-2b", 2.506e9, 18, 2048, 8, 1, 256, 256_000, "bf16",
              ("google/codegemma-1.1-2b", "google/codegemma-2b")),
    ModelSpec("codegemma-7b", 8.538e9, 28, 3072, 16, 16, 256, 256_000, "bf16",
              ("google/codegemma-7b", "google/codegemma-1.1-7b-it")),
    ModelSpec("phi-3-mini", 3.821e9, 32, 3072, 32, 32, 96, 32_064, "bf16",
              ("microsoft/phi-3-mini-4k-instruct",)),
    ModelSpec("phi-3-small", 7.392e9, 32, 4096, 32, 8, 128, 100_352, "bf16",
              ("microsoft/phi-3-small-8k-instruct",)),
    ModelSpec("phi-3-medium", 13.960e9, 40, 5120, 40, 10, 128, 32_064, "bf16",
              ("microsoft/phi-3-medium-4k-instruct",)),
    ModelSpec("starcoder2-3b", 3.030e9, 30, 3072, 24, 2, 128, 49_152, "bf16",
              ("bigcode/starcoder2-3b",)),
    ModelSpec("starcoder2-7b", 7.174e9, 32, 4608, 36, 4, 128, 49_152, "bf16",
              ("bigcode/starcoder2-7b",)),
    ModelSpec("starcoder2-15b", 15.958e9, 40, 6144, 48, 4, 128, 49_152, "bf16",
              ("bigcode/starcoder2-15b",)),
    ModelSpec("qwen2.5-7b", 7.616e9, 28, 3584, 28, 4, 128, 152_064, "bf16",
              ("qwen/qwen2.5-7b-instruct",)),
    ModelSpec("qwen2.5-14b", 14.770e9, 48, 5120, 40, 8, 128, 152_064, "bf16",
              ("qwen/qwen2.5-14b-instruct",)),
    ModelSpec("qwen2.5-32b", 32.764e9, 64, 5120, 40, 8, 128, 152_064, "bf16",
              ("qwen/qwen2.5-32b-instruct",)),
    ModelSpec("qwen2.5-72b", 72.706e9, 80, 8192, 64, 8, 128, 152_064, "bf16",
              ("qwen/qwen2.5-72b-instruct",)),
    ModelSpec("qwen3-8b", 8.191e9, 36, 4096, 32, 8, 128, 151_936, "bf16", ("qwen/qwen3-8b",)),
    ModelSpec("qwen3-14b", 14.768e9, 40, 5120, 40, 8, 128, 151_936, "bf16", ("qwen/qwen3-14b",)),
    ModelSpec("qwen3-32b", 32.762e9, 64, 5120, 64, 8, 128, 151_936, "bf16", ("qwen/qwen3-32b",)),
)  # fmt: skip


class ModelCatalog:
    """An immutable set of :class:`ModelSpec` looked up by name or alias, case-insensitively."""

    __slots__ = ("_by_key", "_specs")

    def __init__(self, specs: Iterable[ModelSpec]) -> None:
        self._specs = tuple(specs)
        self._by_key = {
            _normalise(key): spec for spec in self._specs for key in (spec.name, *spec.aliases)
        }

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs)

    def names(self) -> tuple[str, ...]:
        """Canonical names, in catalog order."""
        return tuple(spec.name for spec in self._specs)

    def get(self, name: str) -> ModelSpec:
        """The model called ``name`` (canonical or alias, any case).

        Raises:
            UnknownModelError: no model has that name.
        """
        try:
            return self._by_key[_normalise(name)]
        except KeyError:
            raise UnknownModelError(name, self.names()) from None


DEFAULT_MODEL_CATALOG: Final = ModelCatalog(_MODELS)


def _count(n: int, noun: str) -> str:
    """``1 KV head``, ``8 KV heads``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
