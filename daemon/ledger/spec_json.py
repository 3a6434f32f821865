"""A job's stored request (``jobs.spec_json``) written without the encoder's pass over a dict
(pure): every job a replay or a queue line adds has a plain request (its fields of their plain
types), whose JSON is a fixed layout of its fields."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any

from daemon.isotime import isoformat
from daemon.queue.job_request import JobRequest

__all__ = ["plain_spec_json"]


def plain_spec_json(request: JobRequest) -> tuple[str | None, str]:
    """``(deadline, spec_json)`` of a request whose fields have their plain types
    (:meth:`JobRequest.is_plain`): ``to_json()["deadline"]`` and ``json.dumps(to_json())``,
    written out field by field (every job of a replay is stored so; the dict and the
    encoder's pass over it were a fifth of an arrival). Texts are escaped by the encoder's
    own function, numbers are their ``repr`` as the encoder writes them, and the lists of
    texts (which repeat across jobs) are encoded once each."""
    r, text, deadline = request, encode_basestring_ascii, request.deadline
    assert r.job_id is not None  # add_jobs' requests have their ids
    at = None if deadline is None else isoformat(deadline)
    quoted = "null" if at is None else f'"{at}"'  # an ISO time needs no escapes
    return at, (
        f'{{"id": {text(r.job_id)}, "name": {text(r.name)}, "model": {_or_null(r.model, text)}, '
        f'"params_b": {_or_null(r.params_b, repr)}, "input_tokens": {r.input_tokens!r}, '
        f'"output_tokens": {r.output_tokens!r}, "requests": {_or_null(r.requests, repr)}, '
        f'"batch_size": {r.batch_size!r}, "tensor_parallel": {r.tensor_parallel!r}, '
        f'"deadline": {quoted}, '
        f'"command": {_texts_json(r.command)}, "regions": {_texts_json(r.regions)}, '
        f'"gpu_types": {_texts_json(r.gpu_types)}, '
        f'"min_gpu_memory_gb": {r.min_gpu_memory_gb!r}, "priority": {r.priority!r}, '
        f'"tags": {_texts_json(r.tags)}, "precision": {text(r.precision)}, '
        f'"runtime": {text(r.runtime)}, "cwd": {_or_null(r.cwd, text)}}}'
    )


def _or_null(value: Any, encode: Callable[[Any], str]) -> str:
    return "null" if value is None else encode(value)


@functools.lru_cache(maxsize=1024)
def _texts_json(texts: tuple[str, ...]) -> str:
    return json.dumps(list(texts))
