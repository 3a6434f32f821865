"""The requests a queue line becomes once validated (:mod:`daemon.queue.line` parses it):
:class:`JobRequest`, with the JSON the ledger stores it as and reads it back from, and
:class:`CancelRequest`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from policies.fast_init import fast_init

__all__ = ["CancelRequest", "JobRequest"]


@fast_init
@dataclass(frozen=True, slots=True)
class JobRequest:
    """A validated job line. ``job_id`` None: the daemon assigns one at ingestion.

    ``cwd``: the absolute directory the job starts in (``carbond submit`` fills in where it
    ran); None (a raw line without ``cwd``) starts it in the user's home directory.
    """

    job_id: str | None
    name: str
    model: str | None
    params_b: float | None
    input_tokens: int
    output_tokens: int
    requests: int | None
    batch_size: int
    tensor_parallel: int
    deadline: datetime | None
    command: tuple[str, ...]
    regions: tuple[str, ...]
    gpu_types: tuple[str, ...]
    min_gpu_memory_gb: float
    priority: int
    tags: tuple[str, ...]
    precision: str
    runtime: str
    cwd: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The normalised queue record (deadline absolute, no ``user``)."""
        return {
            "id": self.job_id,
            "name": self.name,
            "model": self.model,
            "params_b": self.params_b,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "requests": self.requests,
            "batch_size": self.batch_size,
            "tensor_parallel": self.tensor_parallel,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "command": list(self.command),
            "regions": list(self.regions),
            "gpu_types": list(self.gpu_types),
            "min_gpu_memory_gb": self.min_gpu_memory_gb,
            "priority": self.priority,
            "tags": list(self.tags),
            "precision": self.precision,
            "runtime": self.runtime,
            "cwd": self.cwd,
        }

    def is_plain(self) -> bool:
        """Whether every field has its plain type (``str``, ``int``, a finite ``float``,
        tuples of ``str``; the deadline in UTC with ``fold`` 0), as every request a queue
        line or a replay makes: then :meth:`from_json` of its stored JSON
        (``json.dumps(to_json())``) rebuilds an equal request of the same types, zone and
        fold, and the ledger keeps this one instead of parsing that text back."""
        deadline, params_b, memory, texts = (
            self.deadline, self.params_b, self.min_gpu_memory_gb,
            (self.job_id, self.name, self.precision, self.runtime, *self.command,
             *self.regions, *self.gpu_types, *self.tags),
        )  # fmt: skip
        return (
            type(self.input_tokens) is type(self.output_tokens) is type(self.batch_size)
            is type(self.tensor_parallel) is type(self.priority) is int
            and type(self.command) is type(self.regions) is type(self.gpu_types)
            is type(self.tags) is tuple
            and set(map(type, texts)) == {str}
            and (self.model is None or type(self.model) is str)
            and (self.cwd is None or type(self.cwd) is str)
            and (self.requests is None or type(self.requests) is int)
            and (params_b is None or type(params_b) is int
                 or (type(params_b) is float and math.isfinite(params_b)))
            and type(memory) is float and math.isfinite(memory)
            and (deadline is None
                 or (type(deadline) is datetime and deadline.tzinfo is UTC
                     and deadline.fold == 0))
        )  # fmt: skip

    def with_id(self, job_id: str) -> JobRequest:
        """This request under ``job_id``."""
        return replace(self, job_id=job_id)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRequest:
        """Rebuild a request stored by :meth:`to_json` (trusted: written by the daemon)."""
        deadline = data.get("deadline")
        return cls(
            job_id=data["id"],
            name=data["name"],
            model=data.get("model"),
            params_b=data.get("params_b"),
            input_tokens=int(data["input_tokens"]),
            output_tokens=int(data["output_tokens"]),
            requests=data.get("requests"),
            batch_size=int(data["batch_size"]),
            tensor_parallel=int(data.get("tensor_parallel", 1)),
            deadline=datetime.fromisoformat(deadline) if deadline else None,
            command=tuple(data["command"]),
            regions=tuple(data.get("regions", ())),
            gpu_types=tuple(data.get("gpu_types", ())),
            min_gpu_memory_gb=float(data.get("min_gpu_memory_gb", 0.0)),
            priority=int(data.get("priority", 0)),
            tags=tuple(data.get("tags", ())),
            precision=data.get("precision", "fp16"),
            runtime=data.get("runtime", "hf-eager"),
            cwd=data.get("cwd"),
        )


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """A request to cancel ``job_id``; honoured for its owner or root."""

    job_id: str
