"""The workload flags of ``carbond estimate`` and ``carbond advise``, checked as typed.

:meth:`policies.footprint.Workload.validate` names its fields as the code does
(``batch_size must be >= 1``); the user typed ``--batch-size 0``. These checks take the same
bounds and name the flag; the workload's own check stays behind them.
"""

from __future__ import annotations

from collections.abc import Iterable

from daemon.errors import UsageError
from policies.footprint import (
    MAX_BATCH_SIZE,
    MAX_PARAMS_B,
    MAX_REQUESTS,
    MAX_TENSOR_PARALLEL,
    MAX_TOKENS,
    PRECISION_BYTES,
)

__all__ = [
    "check_batch_size",
    "check_max_latency",
    "check_params_b",
    "check_precision",
    "check_requests",
    "check_tensor_parallel",
    "check_tokens",
]


def _count(flag: str, value: int, minimum: int, maximum: int) -> None:
    if minimum <= value <= maximum:
        return
    shown = str(value)
    if len(shown) > 24:  # a count of 400 digits, as Workload.validate shows it
        shown = f"{shown[:12]}... ({len(shown)} digits)"
    raise UsageError(f"{flag} must be {minimum} to {maximum:,}, got {shown}")


def check_batch_size(flag: str, value: int) -> None:
    """``--batch-size`` (or one of ``--batch-sizes``): 1 to ``MAX_BATCH_SIZE``."""
    _count(flag, value, 1, MAX_BATCH_SIZE)


def check_tokens(input_tokens: int, output_tokens: int) -> None:
    """``--input-tokens`` 0 to ``MAX_TOKENS``, ``--output-tokens`` 1 to ``MAX_TOKENS``."""
    _count("--input-tokens", input_tokens, 0, MAX_TOKENS)
    _count("--output-tokens", output_tokens, 1, MAX_TOKENS)


def check_requests(value: int | None) -> None:
    """``--requests`` when given: 1 to ``MAX_REQUESTS``."""
    if value is not None:
        _count("--requests", value, 1, MAX_REQUESTS)


def check_tensor_parallel(value: int) -> None:
    """``--gpus`` of ``estimate`` (GPUs in tensor parallel): 1 to ``MAX_TENSOR_PARALLEL``."""
    _count("--gpus", value, 1, MAX_TENSOR_PARALLEL)


def check_precision(flag: str, names: Iterable[str]) -> None:
    """Each precision named (any case, as the workload lower-cases it) is a known one."""
    for name in names:
        if name.lower() not in PRECISION_BYTES:
            raise UsageError(
                f"{flag}: unknown precision {name!r} (known: {', '.join(PRECISION_BYTES)})"
            )


def check_max_latency(value: float | None) -> None:
    """``--max-latency-s`` when given: a positive number of seconds (NaN fails too)."""
    if value is not None and not value > 0:
        raise UsageError(f"--max-latency-s must be a positive number of seconds, got {value}")


def check_params_b(value: float) -> None:
    """``--params-b``: a positive size up to ``MAX_PARAMS_B`` billion (NaN fails too)."""
    if not 0 < value <= MAX_PARAMS_B:
        raise UsageError(
            f"--params-b must be positive and at most {MAX_PARAMS_B:,} (billion), got {value}"
        )
