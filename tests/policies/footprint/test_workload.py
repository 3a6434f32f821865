"""``Workload.validate`` passes the workloads in range without its per-field checks, with the
same answer as those checks for every workload."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from policies.errors import InvalidWorkloadError
from policies.footprint import workload as workload_module
from policies.footprint.models import PRECISION_BYTES, precision_bytes
from policies.footprint.workload import (
    MAX_BATCH_SIZE,
    MAX_REQUESTS,
    MAX_TENSOR_PARALLEL,
    MAX_TOKENS,
    Workload,
)


def _checked(w: Workload) -> None:
    """The per-field checks of ``validate``, as they were before its quick pass."""
    for field_name, value, minimum, maximum in (
        ("batch_size", w.batch_size, 1, MAX_BATCH_SIZE),
        ("input_tokens", w.input_tokens, 0, MAX_TOKENS),
        ("output_tokens", w.output_tokens, 1, MAX_TOKENS),
        ("requests", w.request_count, 1, MAX_REQUESTS),
        ("tensor_parallel", w.tensor_parallel, 1, MAX_TENSOR_PARALLEL),
    ):
        if value < minimum:
            raise InvalidWorkloadError(f"{field_name} must be >= {minimum}, got {value}")
        if value > maximum:
            shown = str(value)
            if len(shown) > 24:
                shown = f"{shown[:12]}... ({len(shown)} digits)"
            raise InvalidWorkloadError(f"{field_name} must be <= {maximum:,}, got {shown}")
    precision_bytes(w.precision)


def _answer(check: Any, w: Workload) -> tuple[str, str]:
    try:
        check(w)
    except Exception as exc:  # the answer compared, whatever it is
        return type(exc).__name__, str(exc)
    return "passed", ""


def _edges(low: int, high: int) -> list[Any]:
    return [low - 1, low, low + 1, high - 1, high, high + 1, float(low), high + 0.5, math.nan,
            math.inf, -math.inf, True, 10**30]  # fmt: skip


_FIELDS = {
    "batch_size": _edges(1, MAX_BATCH_SIZE),
    "input_tokens": _edges(0, MAX_TOKENS),
    "output_tokens": _edges(1, MAX_TOKENS),
    "requests": [None, *_edges(1, MAX_REQUESTS)],
    "tensor_parallel": _edges(1, MAX_TENSOR_PARALLEL),
}
_PRECISIONS: list[Any] = [*PRECISION_BYTES, "FP16", "Bf16", "fp12", "", None, 16]


def _workloads() -> list[Workload]:
    out = [
        Workload(**{name: value}, precision=precision)
        for name, values in _FIELDS.items()
        for value, precision in itertools.product(values, _PRECISIONS)
    ]
    out += [Workload(batch_size=0, output_tokens=0), Workload(batch_size=MAX_BATCH_SIZE)]
    return out


def test_validate_answers_as_the_per_field_checks_do() -> None:
    for w in _workloads():
        assert _answer(Workload.validate, w) == _answer(_checked, w), w


def test_a_workload_in_range_passes_without_the_per_field_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []

    def counted(precision: str) -> float:
        asked.append(precision)
        return precision_bytes(precision)

    monkeypatch.setattr(workload_module, "precision_bytes", counted)
    in_range = [w for w in _workloads() if type(w.precision) is str and w.precision.islower()
                and _answer(_checked, w)[0] == "passed" and not any(
                    type(getattr(w, f)) in (float, bool) for f in _FIELDS)]  # fmt: skip
    assert len(in_range) > 100
    for w in in_range:
        w.validate()
    assert asked == []
    Workload(precision="FP16").validate()  # an upper-case name: the checks, which pass it
    assert asked == ["FP16"]


@pytest.mark.parametrize(
    ("changed", "field", "value", "allowed"),
    [
        ({"batch_size": 0}, "batch_size", "0", "1 to 1,000,000"),
        ({"input_tokens": -1}, "input_tokens", "-1", "0 to 10,000,000"),
        ({"output_tokens": 10**400}, "output_tokens", "100000000000... (401 digits)",
         "1 to 10,000,000"),
        ({"requests": MAX_REQUESTS + 1}, "requests", "1000000001", "1 to 1,000,000,000"),
        ({"batch_size": 2, "requests": 0}, "requests", "0", "1 to 1,000,000,000"),
        ({"tensor_parallel": 65}, "tensor_parallel", "65", "1 to 64"),
        ({"precision": "fp12"}, "precision", "'fp12'", None),
    ],
)  # fmt: skip
def test_the_error_names_the_field_its_value_and_what_it_takes(
    changed: dict[str, Any], field: str, value: str, allowed: str | None
) -> None:
    """A caller that took the field under another name (the CLI's flags) words the error
    from these, without checking the bounds again."""
    with pytest.raises(InvalidWorkloadError) as info:
        Workload(**changed).validate()
    assert (info.value.field, info.value.value, info.value.allowed) == (field, value, allowed)
    assert value in str(info.value) and str(info.value).startswith(field) == (allowed is not None)


def test_an_error_of_no_one_field_names_none() -> None:
    error = InvalidWorkloadError("advice needs at least one GPU and one zone")
    assert (error.field, error.value, error.allowed) == (None, None, None)
