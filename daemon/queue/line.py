"""One queue line: the untrusted JSON a user appends, validated once and converted (to the
requests of :mod:`daemon.queue.job_request`).

A line is a JSON object. A *job line* carries the fields of DESIGN.md's queue record; a
*cancel line* is ``{"cancel": "<job id>"}``. ``user`` is accepted and ignored: the submitting
user is the uid that wrote the line (the caller of ``carbond submit``, or the owner of the file
for raw appends), never what the line claims.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from daemon.queue.job_request import CancelRequest, JobRequest
from daemon.queue.reasons import InvalidLineError, QuotingError, catalog_name, problems
from policies.errors import PoliciesError
from policies.footprint import (
    DEFAULT_GPU_CATALOG,
    DEFAULT_MODEL_CATALOG,
    MAX_BATCH_SIZE,
    MAX_PARAMS_B,
    MAX_REQUESTS,
    MAX_TENSOR_PARALLEL,
    MAX_TOKENS,
    GpuCatalog,
    get_runtime,
)
from policies.footprint.models import precision_bytes

__all__ = [
    "json_value",
    "parse_deadline",
    "parse_line",
]

_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_RELATIVE = re.compile(r"^\+(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$", re.ASCII)  # not "+١h"


def parse_deadline(text: str, now: datetime) -> datetime:
    """An absolute RFC 3339 time with an offset, or ``+8h``/``+1d12h``/``+30m``/``+90s`` after
    ``now``; returned in UTC.

    Raises:
        ValueError: neither form, a time without a UTC offset, or one outside years 1-9999.
    """
    match = _RELATIVE.match(text.strip())
    if match and any(match.groups()):
        d, h, m, s = (int(g) if g else 0 for g in match.groups())
        try:
            return now + timedelta(days=d, hours=h, minutes=m, seconds=s)
        except (OverflowError, ValueError):
            raise _quoting(text, "is too far away") from None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _quoting(text, "is neither RFC 3339 nor relative like '+8h'") from None
    if value.tzinfo is None:
        raise _quoting(text, "has no UTC offset (add 'Z' or '+00:00')")
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise _quoting(text, "is outside years 1-9999 in UTC") from None


def _quoting(text: str, problem: str) -> QuotingError:
    return QuotingError(f"deadline {text[:40]!r} {problem}", f"the deadline {problem}")


class _JobLine(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: str | None = Field(default=None, pattern=_ID)
    name: str | None = Field(default=None, max_length=200)
    model: str | None = None
    params_b: float | None = Field(default=None, gt=0, le=MAX_PARAMS_B, allow_inf_nan=False)
    input_tokens: int = Field(default=128, ge=0, le=MAX_TOKENS)
    output_tokens: int = Field(default=150, ge=1, le=MAX_TOKENS)
    requests: int | None = Field(default=None, ge=1, le=MAX_REQUESTS)
    batch_size: int = Field(default=1, ge=1, le=MAX_BATCH_SIZE)
    tensor_parallel: int = Field(default=1, ge=1, le=MAX_TENSOR_PARALLEL)
    deadline: str | None = None
    command: list[str] = Field(min_length=1)
    regions: list[str] = Field(default_factory=list)
    gpu_types: list[str] = Field(default_factory=list)
    min_gpu_memory_gb: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    priority: int = Field(default=0, ge=-1000, le=1000)
    tags: list[str] = Field(default_factory=list, max_length=32)
    precision: str = "fp16"
    runtime: str = "hf-eager"
    cwd: str | None = Field(default=None, max_length=4096)
    user: Any = None  # never trusted; see the module docstring

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "\0" in value:
            raise ValueError("contains a NUL byte")
        if not value.startswith("/"):
            raise QuotingError(
                f"must be an absolute path, got {value!r}", "must be an absolute path"
            )
        return os.path.normpath(value)

    @field_validator("command", mode="before")
    @classmethod
    def _argv(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError('must be an argv list like ["python", "x.py"], not a shell string')
        return value

    @field_validator("command")
    @classmethod
    def _argv_items(cls, value: list[str]) -> list[str]:
        if not value[0]:
            raise ValueError("the program (first item) is empty")
        if any("\0" in arg for arg in value):
            raise ValueError("contains a NUL byte")
        return _unicode(value)

    @field_validator("regions", "tags")
    @classmethod
    def _texts(cls, value: list[str]) -> list[str]:
        return _unicode(value)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name: str = catalog_name(value, lambda: DEFAULT_MODEL_CATALOG.get(value).name)
        return name

    @field_validator("gpu_types")
    @classmethod
    def _gpus(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # the site's catalog (its own types, [catalog.gpus.NAME]) when parse_line has one
        gpus: GpuCatalog = (info.context or {}).get("gpu_catalog", DEFAULT_GPU_CATALOG)
        return [catalog_name(name, lambda n=name: gpus.get(n).name) for name in value]

    @field_validator("precision")
    @classmethod
    def _precision(cls, value: str) -> str:
        catalog_name(value, lambda: precision_bytes(value))
        return value.lower()

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, value: str) -> str:
        name: str = catalog_name(value, lambda: get_runtime(value).name)
        return name


def _unicode(items: list[str]) -> list[str]:
    """``items``, each text UTF-8 can encode. A JSON escape such as ``"\\ud800"`` or
    ``"\\udcff"`` gives a lone surrogate, which is not Unicode text: no program can be given
    ``\\ud800``, and SQLite cannot store either (the daemon failed writing how such a job
    ended, at every tick and again at every restart).

    Raises:
        ValueError: an item holds a lone surrogate (its position is named).
    """
    for index, text in enumerate(items):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise QuotingError(
                f"item {index} is not Unicode text: {text[:40]!r}",
                f"item {index} is not Unicode text (a lone surrogate)",
            ) from None
    return items


def parse_line(
    raw: bytes | str,
    now: datetime,
    known_regions: Sequence[str] | None = None,
    catalog: GpuCatalog = DEFAULT_GPU_CATALOG,
) -> JobRequest | CancelRequest:
    """Validate one queue line (without its newline).

    Relative deadlines count from ``now``. ``known_regions``, when given, must contain every
    region the line names; ``gpu_types`` are names in ``catalog`` (the site's, with its own
    types).

    Raises:
        InvalidLineError: not UTF-8, not a JSON object, or a field is wrong (named); every
            other error the line provokes in the JSON, pydantic or datetime code (overflow,
            recursion) is translated to it, so one line can never stop the ones after it.
    """
    try:
        return _parse(raw, now, known_regions, catalog)
    except InvalidLineError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        name = type(exc).__name__
        raise InvalidLineError(
            f"cannot be read: {name}: {str(exc)[:120]}", f"cannot be read: {name}"
        ) from exc


def json_value(text: str, at_line: bool = True) -> Any:
    """``json.loads(text)``, or :class:`InvalidLineError` saying why not in one line (where:
    the line with ``at_line``, a multi-line file's; else the column, a queue line's)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}" if at_line else f"column {exc.colno}"
        raise InvalidLineError(f"not JSON: {exc.msg} at {where}") from exc
    except ValueError as exc:  # an integer past Python's digit limit
        raise InvalidLineError(f"not acceptable JSON: {str(exc)[:120]}") from exc
    except RecursionError as exc:
        raise InvalidLineError("not acceptable JSON: nested too deeply") from exc


def _parse(
    raw: bytes | str, now: datetime, known_regions: Sequence[str] | None, catalog: GpuCatalog
) -> JobRequest | CancelRequest:
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise InvalidLineError(f"not UTF-8 text (byte {exc.start})") from exc
    obj = json_value(text, at_line=False)
    if not isinstance(obj, dict):
        raise InvalidLineError(f"a line must be a JSON object, got {type(obj).__name__}")
    if "cancel" in obj:
        job_id = obj.get("cancel")
        if set(obj) != {"cancel"} or not isinstance(job_id, str) or not re.fullmatch(_ID, job_id):
            raise InvalidLineError('field \'cancel\': a cancel line is {"cancel": "<job id>"}')
        return CancelRequest(job_id)
    try:
        line = _JobLine.model_validate(obj, context={"gpu_catalog": catalog})
    except ValidationError as exc:
        raise problems(exc) from exc
    return _convert(line, now, known_regions)


def _convert(line: _JobLine, now: datetime, known_regions: Sequence[str] | None) -> JobRequest:
    if (line.model is None) == (line.params_b is None):
        raise InvalidLineError("field 'model': give exactly one of 'model' or 'params_b'")
    if line.model is not None:
        try:
            DEFAULT_MODEL_CATALOG.get(line.model).check_split(line.tensor_parallel)
        except PoliciesError as exc:
            raise InvalidLineError(f"field 'tensor_parallel': {exc}") from exc
    deadline = None
    if line.deadline is not None:
        try:
            deadline = parse_deadline(line.deadline, now)
        except ValueError as exc:
            said = exc.public if isinstance(exc, QuotingError) else "not a time"
            raise InvalidLineError(f"field 'deadline': {exc}", f"field 'deadline': {said}") from exc
    if known_regions is not None:
        unknown = [r for r in line.regions if r not in known_regions]
        if unknown:
            known = ", ".join(known_regions) or "none configured"
            raise InvalidLineError(
                f"field 'regions': unknown region {unknown[0]!r} (known: {known})",
                f"field 'regions': an unknown region (known: {known})",
            )
    return JobRequest(
        job_id=line.id,
        name=line.name or (line.id or line.command[0]),
        model=line.model,
        params_b=line.params_b,
        input_tokens=line.input_tokens,
        output_tokens=line.output_tokens,
        requests=line.requests,
        batch_size=line.batch_size,
        tensor_parallel=line.tensor_parallel,
        deadline=deadline,
        command=tuple(line.command),
        regions=tuple(line.regions),
        gpu_types=tuple(line.gpu_types),
        min_gpu_memory_gb=line.min_gpu_memory_gb,
        priority=line.priority,
        tags=tuple(line.tags),
        precision=line.precision,
        runtime=line.runtime,
        cwd=line.cwd,
    )
