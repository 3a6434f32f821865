"""Prompt files for per-prompt estimates: JSONL, one prompt per line, token counts only.

Each line is a JSON object with ``input_tokens`` and ``output_tokens`` (non-negative integers;
aliases ``prompt_tokens``/``completion_tokens``, as OpenAI usage objects name them, and
``input_length``/``output_length``, as the Mooncake traces do) and an optional ``id``. Other
fields are ignored. Blank lines are skipped. The text of the prompts is never needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from daemon.errors import UsageError
from policies.footprint import MAX_TOKENS

__all__ = ["Prompt", "read_prompts"]


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt: its id (the line number when the file gives none) and token counts."""

    id: str
    input_tokens: int
    output_tokens: int


class _Line(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str | int | None = None
    input_tokens: int = Field(
        ge=0,
        le=MAX_TOKENS,
        validation_alias=AliasChoices("input_tokens", "prompt_tokens", "input_length"),
    )
    output_tokens: int = Field(
        ge=1,
        le=MAX_TOKENS,
        validation_alias=AliasChoices("output_tokens", "completion_tokens", "output_length"),
    )

    @field_validator("id", "input_tokens", "output_tokens", mode="before")
    @classmethod
    def _not_a_bool(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, bool):  # JSON's true is Python's 1: never a count or an id
            kind = "a string or a number" if info.field_name == "id" else "a number"
            raise ValueError(f"must be {kind}, not {str(value).lower()}")
        return value


def read_prompts(path: Path) -> list[Prompt]:
    """Read ``path``.

    Raises:
        UsageError: the file is missing, empty or not UTF-8, or a line is not a valid prompt
            object (the message names the file, the line and the field).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read prompts file {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        line_no = e.object[: e.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line_no}: not UTF-8 text (byte {e.start})") from e
    prompts = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}:{number}: not JSON ({e.msg})") from e
        except ValueError as e:  # an integer past Python's digit limit
            raise UsageError(f"{path}:{number}: not acceptable JSON: {str(e)[:120]}") from e
        except RecursionError as e:
            raise UsageError(f"{path}:{number}: not acceptable JSON: nested too deeply") from e
        if not isinstance(obj, dict):
            kind = type(obj).__name__
            raise UsageError(f"{path}:{number}: a prompt must be a JSON object, got {kind}")
        try:
            parsed = _Line.model_validate(obj)
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "line"
            message = first["msg"].removeprefix("Value error, ")
            raise UsageError(f"{path}:{number}: {field}: {message}") from e
        ident = str(parsed.id) if parsed.id is not None else str(number)
        prompts.append(Prompt(ident, parsed.input_tokens, parsed.output_tokens))
    if not prompts:
        raise UsageError(f"{path}: no prompts")
    return prompts
