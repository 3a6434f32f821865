"""What a job asks for (:class:`Workload`) and the bounds every reader of one takes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from policies.errors import InvalidWorkloadError
from policies.fast_init import fast_init
from policies.footprint.models import PRECISION_BYTES, precision_bytes

__all__ = ["MAX_BATCH_SIZE", "MAX_REQUESTS", "MAX_TENSOR_PARALLEL", "MAX_TOKENS", "Workload"]


# A workload's bounds (queue lines, replay traces and the CLI's flags take the same):
MAX_TOKENS: Final = 10_000_000  # per request, input or output
MAX_REQUESTS: Final = 1_000_000_000  # per job
MAX_BATCH_SIZE: Final = 1_000_000
MAX_TENSOR_PARALLEL: Final = 64


@fast_init
@dataclass(frozen=True, slots=True)
class Workload:
    """What a job asks for. Token counts are per request (means)."""

    batch_size: int = 1
    input_tokens: int = 128
    output_tokens: int = 150
    requests: int | None = None
    precision: str = "fp16"
    tensor_parallel: int = 1

    @property
    def request_count(self) -> int:
        """Requests in the job (default: one full batch)."""
        return self.batch_size if self.requests is None else self.requests

    def validate(self) -> None:
        """Raises InvalidWorkloadError naming the first field out of range (bounds above:
        a count past them would only overflow the float arithmetic)."""
        if (  # asked several times a job: plain counts in range and a known precision, named
            # in lower case as PRECISION_BYTES has it, pass here (requests None is batch_size,
            # within MAX_REQUESTS then); the checks below say why not (or pass a NaN, "FP16")
            1 <= self.batch_size <= MAX_BATCH_SIZE
            and 0 <= self.input_tokens <= MAX_TOKENS
            and 1 <= self.output_tokens <= MAX_TOKENS
            and (self.requests is None or 1 <= self.requests <= MAX_REQUESTS)
            and 1 <= self.tensor_parallel <= MAX_TENSOR_PARALLEL
            and type(self.precision) is str
            and self.precision in PRECISION_BYTES
        ):
            return
        for field_name, value, minimum, maximum in (
            ("batch_size", self.batch_size, 1, MAX_BATCH_SIZE),
            ("input_tokens", self.input_tokens, 0, MAX_TOKENS),
            ("output_tokens", self.output_tokens, 1, MAX_TOKENS),
            ("requests", self.request_count, 1, MAX_REQUESTS),
            ("tensor_parallel", self.tensor_parallel, 1, MAX_TENSOR_PARALLEL),
        ):
            if value < minimum:
                bound = f">= {minimum}"
            elif value > maximum:
                bound = f"<= {maximum:,}"
            else:  # in range (or a NaN, left to the precision check and the estimate)
                continue
            shown = str(value)
            if len(shown) > 24:  # a count of 400 digits
                shown = f"{shown[:12]}... ({len(shown)} digits)"
            raise InvalidWorkloadError(
                f"{field_name} must be {bound}, got {shown}",
                field=field_name,
                value=shown,
                allowed=f"{minimum} to {maximum:,}",
            )
        precision_bytes(self.precision)
