"""The CLI words a workload's errors with the flags typed, from the error itself: the
bounds are checked once, by the workload (and the model, and ``advise``)."""

from __future__ import annotations

import pytest

from daemon.cli.workload_flags import as_flag_error, flags_named
from daemon.errors import UsageError
from policies.errors import InvalidWorkloadError
from policies.footprint import ModelSpec, Workload
from policies.footprint.models import MAX_PARAMS_B
from policies.footprint.workload import MAX_BATCH_SIZE

_FLAGS = {"batch_size": "--batch-size", "precision": "--precision", "params_b": "--params-b"}


def _error(check: object) -> InvalidWorkloadError:
    with pytest.raises(InvalidWorkloadError) as info:
        assert callable(check)
        check()
    return info.value


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (_error(Workload(batch_size=0).validate), "--batch-size must be 1 to 1,000,000, got 0"),
        (_error(Workload(batch_size=MAX_BATCH_SIZE + 1).validate),
         "--batch-size must be 1 to 1,000,000, got 1000001"),
        (_error(Workload(batch_size=10**400).validate),
         "--batch-size must be 1 to 1,000,000, got 100000000000... (401 digits)"),
        (_error(Workload(precision="fp7").validate),
         "--precision: unknown precision 'fp7' (known: fp32, fp16, bf16, fp8, int8, int4)"),
        (_error(lambda: ModelSpec.from_params(MAX_PARAMS_B * 2)),
         "--params-b must be positive and at most 10,000 (billion), got 20000"),
    ],
)  # fmt: skip
def test_a_field_is_named_by_its_flag(error: InvalidWorkloadError, message: str) -> None:
    worded = as_flag_error(error, _FLAGS)
    assert isinstance(worded, UsageError) and str(worded) == message


def test_a_field_no_flag_gave_keeps_its_own_words() -> None:
    error = _error(Workload(tensor_parallel=65).validate)
    assert as_flag_error(error, _FLAGS) is error
    raised = pytest.raises(InvalidWorkloadError, match=r"^tensor_parallel must be <= 64, got 65$")
    with raised, flags_named(_FLAGS):
        Workload(tensor_parallel=65).validate()


def test_flags_named_raises_the_flags_error_from_the_workloads() -> None:
    raised = pytest.raises(UsageError, match=r"^--batch-size must be 1 to 1,000,000, got 0$")
    with raised as info, flags_named(_FLAGS):
        Workload(batch_size=0).validate()
    assert isinstance(info.value.__cause__, InvalidWorkloadError)
