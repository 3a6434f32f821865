"""Read the ML.ENERGY leaderboard measurements (flat CSVs) into configurations carbond can predict.

Each :class:`Measured` is one benchmark configuration: a dense model served by vLLM on ``gpus``
GPUs of one type with ``max_batch`` requests in flight, and what was measured (GPU energy per
output token and per request, inter-token latency, power of all GPUs together).

The leaderboards publish output lengths but not prompt lengths, so the mean prompt length of each
task is an assumption, stated in :data:`TASK_INPUT_TOKENS` (decode dominates these workloads: a
factor two on the prompt length moves energy per token by a few per cent at most).

Rows the estimator does not cover are skipped with a reason (:class:`Skipped`): mixture-of-experts
and Mamba-hybrid models, vision-language tasks, models missing from the catalog.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from policies.errors import CatalogError
from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG

__all__ = [
    "TASK_INPUT_TOKENS",
    "V2_FILE",
    "Measured",
    "Skipped",
    "read_v2",
    "read_v3",
]

V2_FILE: Final = "llm_energy/mlenergy_v2/mlenergy_v2_llm_configurations_flat.csv"
"""The fit set, relative to the shared data folder."""

# Mean prompt tokens per task (assumed; see the module docstring). v2 "chat" is ShareGPT with
# the leaderboard's system prompt, v2 "code" code completion; v3 "lm-arena-chat" LMArena
# conversations, v3 "gpqa" GPQA questions with their four choices and instructions.
TASK_INPUT_TOKENS: Final = {"chat": 250, "code": 200, "lm-arena-chat": 250, "gpqa": 300}

# The engines: v2 (2024) ran vLLM 0.5/0.6 (V0 engine); v3 (2025-26) runs vLLM with the V1
# engine (the default since 0.8).
_V2_ENGINE: Final = "vllm-v0"
_V3_ENGINE: Final = "vllm"

_PRECISIONS: Final = {"bfloat16": "bf16", "float16": "fp16", "fp8": "fp8"}


@dataclass(frozen=True, slots=True)
class Measured:
    """One measured configuration. Energies count every GPU of the replica."""

    source: str  # "v2" (fit set) or "v3" (held-out set)
    engine: str  # carbond runtime profile matching the serving engine that was measured
    task: str
    model_id: str
    model: str  # carbond catalog name
    gpu: str  # carbond catalog name
    gpus: int
    tensor_parallel: int
    max_batch: int
    avg_batch: float
    input_tokens: int
    output_tokens: float
    precision: str
    energy_per_token_j: float
    energy_per_request_j: float
    tpot_s: float
    power_w: float
    line: int

    @property
    def key(self) -> str:
        """A short label: ``model gpu xTP bsN task``."""
        return (
            f"{self.model} {self.gpu} x{self.tensor_parallel} bs{self.max_batch} "
            f"{self.task} ({self.source})"
        )


@dataclass(frozen=True, slots=True)
class Skipped:
    """A row that is not predicted, and why."""

    source: str
    line: int
    model_id: str
    reason: str


def _catalog_names(model_id: str, gpu: str) -> tuple[str, str] | str:
    base = model_id.removesuffix("-FP8")
    try:
        model = DEFAULT_MODEL_CATALOG.get(base).name
    except CatalogError:
        return f"model {base!r} not in the catalog"
    try:
        gpu_name = DEFAULT_GPU_CATALOG.get(gpu).name
    except CatalogError:
        return f"GPU {gpu!r} not in the catalog"
    return model, gpu_name


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        yield from enumerate(csv.DictReader(handle), start=2)


def _float(row: dict[str, str], field: str, path: Path, line: int) -> float:
    try:
        return float(row[field])
    except (KeyError, ValueError) as e:
        raise ValueError(
            f"{path}:{line}: field {field!r} is not a number: {row.get(field)!r}"
        ) from e


def read_v2(path: Path) -> tuple[list[Measured], list[Skipped]]:
    """The v2 flat CSV (A100-40GB, H100): dense text-generation rows.

    Raises:
        OSError: the file cannot be read.
        ValueError: a numeric field is malformed (message names file, line, field).
    """
    measured: list[Measured] = []
    skipped: list[Skipped] = []
    for line, row in _rows(path):
        model_id = row["Model"]
        if row["architecture_dir"] != "llm_text_generation":
            skipped.append(Skipped("v2", line, model_id, "vision-language task"))
            continue
        if "mixtral" in model_id.lower():
            skipped.append(Skipped("v2", line, model_id, "mixture of experts (out of scope)"))
            continue
        names = _catalog_names(model_id, row["gpu_dir"])
        if isinstance(names, str):
            skipped.append(Skipped("v2", line, model_id, names))
            continue
        tp = int(_float(row, "TP", path, line))
        pp = int(_float(row, "PP", path, line))
        out = _float(row, "Avg Output Tokens", path, line)
        per_request = _float(row, "Energy/req (J)", path, line)
        per_token = per_request / out
        task = row["task_dir"]
        # Pipeline parallelism (405B: 8 x 2 stages) is modelled as tensor parallelism over
        # all tp * pp GPUs with one micro-batch of max_bs / pp per stage in flight: per GPU the
        # same weights, FLOPs and KV bytes per step; "Max BS" counts all pp micro-batches.
        measured.append(
            Measured("v2", _V2_ENGINE, task, model_id, names[0], names[1], tp * pp, tp * pp,
                     max(1, int(_float(row, "Max BS (reqs)", path, line)) // pp),
                     _float(row, "Avg BS (reqs)", path, line) / pp, TASK_INPUT_TOKENS[task], out,
                     "bf16", per_token, per_request, _float(row, "Avg TPOT (s)", path, line),
                     per_token * _float(row, "Token tput (tok/s)", path, line), line)
        )  # fmt: skip
    return measured, skipped


def read_v3(path: Path) -> tuple[list[Measured], list[Skipped]]:
    """The v3 flat CSV (H100, B200): dense text-only rows. Evaluation only, never fitting.

    Raises:
        OSError: the file cannot be read.
        ValueError: a numeric field is malformed (message names file, line, field).
    """
    measured: list[Measured] = []
    skipped: list[Skipped] = []
    for line, row in _rows(path):
        model_id, task = row["model_id"], row["task"]
        if row["architecture"] != "Dense Transformer":
            skipped.append(Skipped("v3", line, model_id, f"{row['architecture']} (out of scope)"))
            continue
        if task not in TASK_INPUT_TOKENS:
            skipped.append(
                Skipped("v3", line, model_id, f"task {task!r} (vision/FIM, no prompt lengths)")
            )
            continue
        names = _catalog_names(model_id, row["gpu_model"])
        if isinstance(names, str):
            skipped.append(Skipped("v3", line, model_id, names))
            continue
        precision = _PRECISIONS.get(row["weight_precision"])
        if precision is None:
            skipped.append(Skipped("v3", line, model_id, f"precision {row['weight_precision']!r}"))
            continue
        measured.append(
            Measured("v3", _V3_ENGINE, task, model_id, names[0], names[1],
                     int(_float(row, "num_gpus", path, line)),
                     int(_float(row, "tensor_parallel", path, line)),
                     int(_float(row, "max_num_seqs", path, line)),
                     _float(row, "avg_batch_size", path, line), TASK_INPUT_TOKENS[task],
                     _float(row, "avg_output_len", path, line), precision,
                     _float(row, "energy_per_token_joules", path, line),
                     _float(row, "energy_per_request_joules", path, line),
                     _float(row, "median_itl_ms", path, line) / 1000.0,
                     _float(row, "avg_power_watts", path, line), line)
        )  # fmt: skip
    return measured, skipped
