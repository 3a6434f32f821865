"""Property-based fuzzing of the queue-line parser and of ingestion (issue 13's harness).

- ``parse_line`` returns a request or raises :class:`InvalidLineError`, whatever the bytes; an
  accepted request survives the trip through the ledger's JSON; a job-shaped object it refuses
  is refused naming a field. Lines are read against a site catalog with a type of its own
  (``[catalog.gpus.L40]``), and values include ``cwd``, deadlines with offsets, and text with
  lone surrogates (JSON escapes) beside other Unicode.
- Ingestion: good lines interleaved with anything else, appended in arbitrary pieces across
  passes, in the main queue and a spool file, with a small line limit and small reads: every
  good line is ingested exactly once, every other non-blank line is rejected exactly once,
  nothing raises, the offsets end at the end of each file, and each rejected line's record
  in ``rejected.jsonl`` names its file and line number. Good lines name the site's GPU type,
  region pins, offset deadlines, a ``cwd`` and non-ASCII commands.

The example count comes from the hypothesis profile (see ``tests/conftest.py``: short in CI,
long under ``make fuzz``).
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.ledger import Ledger
from daemon.queue import SPOOL_DIR
from daemon.queue.ingest import Queue
from daemon.queue.job_request import CancelRequest, JobRequest
from daemon.queue.line import parse_line
from daemon.queue.reasons import InvalidLineError
from daemon.settings import Settings
from policies.footprint.gpus import DEFAULT_GPU_CATALOG, GPU_SPEC_FIELDS

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
_FIELDS = ("id", "name", "model", "params_b", "input_tokens", "output_tokens", "requests",
           "batch_size", "tensor_parallel", "deadline", "command", "regions", "gpu_types",
           "min_gpu_memory_gb", "priority", "tags", "precision", "runtime", "cwd", "user",
           "cancel")  # fmt: skip
# Values that mean something to some field, and deadlines past the calendar.
_MEANINGFUL = ("llama-1b", "T4", "L40", "nvidia l40", "fp16", "vllm", "qc", "+8h", "+1d12h",
               "+30m", "+90s", "+9999999d", "+99999999999d", "0001-01-01T00:00:00+14:00",
               "9999-12-31T23:59:59-14:00", "2024-06-01T00:00:00Z", "2024-06-01T00:00:00",
               "2024-06-01T17:30:00+05:30", "2024-06-01T00:00:00.5-03:30", "/srv/a/../b",
               "relative/dir", "日本語", "/home/ünï/x")  # fmt: skip
# The site's catalog: the built-in types and one of its own ([catalog.gpus.L40]).
_L4 = {k: v for k, v in asdict(DEFAULT_GPU_CATALOG.get("L4")).items() if k in GPU_SPEC_FIELDS}
SITE_CATALOG = Settings.model_validate(
    {"catalog": {"gpus": {"L40": {**_L4, "embodied_method": "act-estimate"}}}}
).catalog.gpu_catalog()
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**320),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.text(st.characters(codec=None, categories=["Cs", "Lo", "Ll"]), max_size=6),
    st.sampled_from(_MEANINGFUL),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Job-shaped objects: the real field names with any JSON values (where validation lives).
_job_like = st.dictionaries(st.sampled_from(_FIELDS), _json, max_size=8).map(
    lambda d: {"model": "llama-1b", "command": ["true"], **d}
)


def _encoded(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


# Lines that raised past the parser before issue 13's fix, each as a whole line.
_POISON = (
    *(
        _encoded({"model": "llama-1b", "command": ["true"], "deadline": deadline})
        for deadline in ("+9999999d", "+99999999999d", "0001-01-01T00:00:00+14:00")
    ),
    b'{"requests": ' + b"9" * 5000 + b"}",
    b'{"command": ' + b"[" * 5000 + b"]" * 5000 + b"}",
)

_lines = st.one_of(
    st.sampled_from(_POISON),
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    _json.map(_encoded),
    _job_like.map(_encoded),
    st.integers(min_value=1, max_value=30_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=4_200, max_value=6_000).map(lambda n: b'{"requests": ' + b"7" * n + b"}"),
)


@given(_lines)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_parse_line_raises_only_its_own_error(raw: bytes) -> None:
    try:
        parsed = parse_line(raw, NOW, ["qc", "ciso"], SITE_CATALOG)
    except InvalidLineError as exc:
        assert str(exc)  # a reason, never empty
        return
    if isinstance(parsed, JobRequest):
        stored = json.loads(json.dumps(parsed.to_json()))
        assert JobRequest.from_json(stored) == parsed
        assert parsed.with_id("j").is_plain()  # the ledger keeps it, not its JSON parsed back
    else:
        assert isinstance(parsed, CancelRequest)


@given(_job_like)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_refused_job_shaped_line_names_a_field(obj: dict[str, Any]) -> None:
    """Every field of these objects is one of the record's: what is wrong is one of them."""
    try:
        parse_line(_encoded(obj), NOW, ["qc", "ciso"], SITE_CATALOG)
    except InvalidLineError as exc:
        assert "field '" in str(exc) and "field '" in exc.public, (str(exc), exc.public)


_bad = _lines.map(lambda raw: raw.replace(b"\n", b" "))


@st.composite
def _files(draw: st.DrawFn) -> tuple[list[bytes | None], list[int]]:
    """Lines (None: a good line) and where the bytes are cut into separate appends."""
    lines = draw(st.lists(st.one_of(st.none(), _bad), min_size=1, max_size=12))
    cuts = draw(st.lists(st.integers(min_value=0, max_value=4000), max_size=3))
    return lines, cuts


# What good lines carry beside their id, model and command, in turn: the site's own GPU type,
# pins, offset deadlines, a cwd, non-ASCII text (as UTF-8 and as JSON escapes).
_GOOD_EXTRAS: tuple[dict[str, Any], ...] = (
    {},
    {"gpu_types": ["nvidia l40", "T4"], "regions": ["qc"]},
    {"deadline": "2024-06-01T17:30:00+05:30", "cwd": "/srv/jobs/../ünï"},
    {"command": ["/usr/bin/échо", "日本語", "🙂"], "name": "ジョブ", "user": "zoë", "tags": ["ß"]},
    {"deadline": "+1d12h", "min_gpu_memory_gb": 16, "gpu_types": ["L40"]},
)


def _content(lines: list[bytes | None], prefix: str) -> tuple[bytes, list[str]]:
    """The file's bytes, and the ids of its good lines (unique to this example)."""
    out, good = [], []
    for n, raw in enumerate(lines):
        if raw is None:
            good.append(f"{prefix}{n}")
            record = {"id": good[-1], "model": "llama-1b", "command": ["true"],
                      **_GOOD_EXTRAS[n % len(_GOOD_EXTRAS)]}  # fmt: skip
            out.append(json.dumps(record, ensure_ascii=n % 2 == 0).encode())
        else:
            out.append(raw)
    return b"".join(line + b"\n" for line in out), good


_FAST_DIR = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # fsync is free there
_examples = itertools.count()


@pytest.fixture(scope="module")
def shared_ledger() -> Iterator[Ledger]:
    """One ledger for every example (opening one costs more than an example)."""
    with (
        tempfile.TemporaryDirectory(dir=_FAST_DIR) as tmp,
        Ledger.open(Path(tmp) / "ledger.db") as ledger,
    ):
        yield ledger


# An ingestion example costs ~50x a parser example (files, ledger writes): the long profile
# runs a tenth of its count here (1,760 of make fuzz's 17,000, about 5 minutes on 2 cores).
_PROFILE_EXAMPLES = settings().max_examples
_INGEST_EXAMPLES = min(_PROFILE_EXAMPLES, 60 + _PROFILE_EXAMPLES // 10)


@given(main=_files(), spool=_files(),
       max_line=st.one_of(st.integers(min_value=200, max_value=2048), st.just(65_536)),
       chunk_factor=st.floats(min_value=1.0, max_value=4.0))  # fmt: skip
@settings(max_examples=_INGEST_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
def test_a_bad_line_never_stops_the_lines_around_it(
    shared_ledger: Ledger,
    main: tuple[list[bytes | None], list[int]],
    spool: tuple[list[bytes | None], list[int]],
    max_line: int,
    chunk_factor: float,
) -> None:
    ledger, prefix = shared_ledger, f"e{next(_examples)}-"
    with tempfile.TemporaryDirectory(dir=_FAST_DIR) as tmp:
        state = Path(tmp)
        queue = Queue(state, ledger, max_line_bytes=max_line, compact_min_bytes=10**9,
                      known_regions=["qc"], catalog=SITE_CATALOG)  # fmt: skip
        queue.prepare()
        queue.reader.read_chunk_bytes = int(max_line * chunk_factor)
        files = {
            queue.path: (*_content(main[0], prefix), main[1]),
            state / SPOOL_DIR / f"{os.getuid()}.jsonl": (*_content(spool[0], prefix + "s"),
                                                         spool[1]),
        }  # fmt: skip
        for path in files:
            ledger.forget_queue_file(str(path.relative_to(state)))  # the last example's
        pieces: list[list[bytes]] = []
        for data, _, cuts in files.values():
            bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
            pieces.append([data[a:b] for a, b in itertools.pairwise(bounds)])
        accepted: list[str] = []
        others = 0
        for step in range(max(len(p) for p in pieces)):
            for path, parts in zip(files, pieces, strict=True):
                if step < len(parts):
                    with path.open("ab") as out:
                        out.write(parts[step])
            result = queue.ingest(NOW)  # must never raise
            accepted += result.accepted
            others += result.rejected + result.duplicates + len(result.cancels)
        good = [g for _, names, _ in files.values() for g in names]
        assert sorted(a for a in accepted if a.startswith(prefix)) == sorted(good)
        assert len(accepted) == len(set(accepted))  # exactly once
        lines = [raw for data, _, _ in files.values() for raw in data.split(b"\n")[:-1]]
        assert len(accepted) + others == sum(1 for raw in lines if raw.strip())
        records = ledger.queue_files()
        for path in files:
            assert records[str(path.relative_to(state))].byte_offset == path.stat().st_size
        _assert_rejections_name_their_lines(state, files)


def _assert_rejections_name_their_lines(
    state: Path, files: dict[Path, tuple[bytes, list[str], list[int]]]
) -> None:
    """Each ``rejected.jsonl`` record names a file and the number of a line of it that is not
    a good one, its reason starting with that number; no line is recorded twice."""
    path = state / "rejected.jsonl"
    raw_records = (
        path.read_bytes().split(b"\n")[:-1] if path.exists() else []
    )  # not splitlines: U+0085
    records = [json.loads(r) for r in raw_records]
    lines = {str(p.relative_to(state)): data.split(b"\n")[:-1] for p, (data, _, _) in files.items()}
    good = {  # a good line's id ends with its index in its file
        (str(p.relative_to(state)), int(g.rsplit("-", 1)[1].lstrip("s")) + 1)
        for p, (_, names, _) in files.items()
        for g in names
    }
    seen = set()
    for record in records:
        rel, line_no = record["file"], record["line_no"]
        assert rel in lines and 1 <= line_no <= len(lines[rel]), record
        raw = lines[rel][line_no - 1]
        assert raw.strip() and (rel, line_no) not in good, record
        assert record["reason"].startswith(f"line {line_no}: "), record
        assert (rel, line_no) not in seen, record
        seen.add((rel, line_no))
