"""Fuzzing the request-trace adapters (Azure CSV, Mooncake and carbond JSONL): whatever the file
holds, ``read_requests`` returns a trace whose arrivals are finite and sorted from 0 and whose
counts are within a queue line's limits, or raises ``ReplayInputError`` naming the file (never
anything else); and good rows are all read whatever bad rows sit between them, each bad row
named by its line."""

from __future__ import annotations

import gzip
import json
import math
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.replay.errors import ReplayInputError
from daemon.replay.traces import TRACE_FORMATS, read_requests
from policies.footprint.workload import MAX_REQUESTS, MAX_TOKENS
from tests.fuzzing import examples

_FIELDS = {
    "azure": ("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
    "mooncake": ("timestamp", "input_length", "output_length"),
    "carbond": ("arrival", "input_tokens", "output_tokens", "requests"),
}

_numbers = st.one_of(
    st.integers(), st.integers(-5, 5), st.integers(MAX_TOKENS - 2, MAX_REQUESTS + 2),
    st.floats(allow_nan=True, allow_infinity=True), st.just(1.5),
    st.sampled_from([2**64, 10**400, 1.7e308, -1.7e308]),  # past int64, a float, the clock
)  # fmt: skip
_times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
    timezones=st.one_of(st.none(), st.just(UTC),
                        st.builds(lambda m: timezone(timedelta(minutes=m)),
                                  st.integers(-840, 840))),
)  # fmt: skip
_text = st.one_of(
    _times.map(lambda t: t.isoformat(sep=" ")), _times.map(lambda t: t.isoformat() + "0"),
    _numbers.map(str), st.sampled_from(["", " ", "nan", "1e999", "0x10", "1_000", "-0"]),
    st.text(max_size=12),
)  # fmt: skip
_json_value = st.one_of(
    _numbers, _text, st.booleans(), st.none(), st.lists(st.integers(), max_size=2)
)


def _cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


@st.composite
def _trace_text(draw: st.DrawFn, fmt: str) -> str:
    """A file of ``fmt`` with odd but plausible rows: any value in any field, a field or a
    column missing now and then, a line that is not JSON."""
    fields = _FIELDS[fmt]
    lines = [",".join(draw(st.permutations(fields)))] if fmt == "azure" else []
    header = lines[0].split(",") if lines else list(fields)
    for _ in range(draw(st.integers(0, 10))):
        if fmt == "azure":
            cells = [draw(_text) for _ in header]
            if draw(st.integers(0, 9)) == 0:
                cells = cells[: draw(st.integers(0, len(cells)))]
            lines.append(",".join(_cell(c) for c in cells))
        elif draw(st.integers(0, 9)) == 0:
            lines.append(draw(st.sampled_from(["[1]", "{bad", "null", '"x"', "", "1" * 5000])))
        else:
            obj = {name: draw(_json_value) for name in header if draw(st.integers(0, 12))}
            lines.append(json.dumps(obj))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))


def _read(data: bytes, suffix: str, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"trace{suffix}"
        path.write_bytes(data)
        try:
            trace = read_requests(path, fmt)
        except ReplayInputError as exc:
            assert str(path) in str(exc)
            return
    assert len(trace) >= 1 and trace.offset_s[0] == 0.0
    assert np.all(np.isfinite(trace.offset_s)) and np.all(np.diff(trace.offset_s) >= 0)
    for counts, least, most in ((trace.input_tokens, 0, MAX_TOKENS),
                                (trace.output_tokens, 0, MAX_TOKENS),
                                (trace.requests, 1, MAX_REQUESTS)):  # fmt: skip
        assert counts.min() >= least and counts.max() <= most


@settings(max_examples=examples(0.2))
@given(st.sampled_from(TRACE_FORMATS).flatmap(lambda f: st.tuples(st.just(f), _trace_text(f))),
       st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]), st.booleans())  # fmt: skip
def test_any_trace_reads_or_fails_with_the_replay_input_error(
    drawn: tuple[str, str], encoding: str, zipped: bool
) -> None:
    fmt, text = drawn
    data = text.encode(encoding, errors="replace")
    _read(gzip.compress(data) if zipped else data, ".gz" if zipped else ".txt", fmt)


@settings(max_examples=examples(0.1))
@given(st.sampled_from(TRACE_FORMATS), st.binary(max_size=300))
def test_any_bytes_read_or_fail_with_the_replay_input_error(fmt: str, data: bytes) -> None:
    _read(data, ".txt", fmt)


_BAD = {
    "azure": ["yesterday,1,1", "{t},-1,1", "{t},1", "{t},1e5,1", "{t},nan,1",
              f"{{t}},{MAX_TOKENS + 1},1"],
    "mooncake": ["[1]", "{{bad", '{{"timestamp": "0", "input_length": 1, "output_length": 1}}',
                 '{{"timestamp": 0, "input_length": -1, "output_length": 1}}',
                 '{{"timestamp": NaN, "input_length": 1, "output_length": 1}}'],
    "carbond": ['{{"arrival": "{t}", "input_tokens": 1, "output_tokens": 1}}',
                '{{"arrival": "{t}Z", "input_tokens": 1, "output_tokens": 0}}',
                '{{"arrival": "{t}Z", "input_tokens": 1, "output_tokens": 1, "requests": 0}}',
                '{{"arrival": Infinity, "input_tokens": 1, "output_tokens": 1}}'],
}  # fmt: skip


def _good_row(fmt: str, when: datetime, n_in: int, n_out: int) -> str:
    if fmt == "azure":
        return f"{when:%Y-%m-%d %H:%M:%S.%f}0,{n_in},{n_out}"
    if fmt == "mooncake":
        ms = (when - datetime(2023, 1, 1)).total_seconds() * 1000
        return json.dumps({"timestamp": ms, "input_length": n_in, "output_length": n_out})
    return json.dumps({"arrival": f"{when.isoformat()}Z", "input_tokens": n_in,
                       "output_tokens": n_out, "requests": 3})  # fmt: skip


@settings(max_examples=examples(0.1))
@given(
    st.sampled_from(TRACE_FORMATS),
    st.lists(st.tuples(st.floats(0, 86400), st.integers(0, MAX_TOKENS), st.integers(1, 5000)),
             min_size=1, max_size=20),
    st.lists(st.tuples(st.integers(0, 25), st.integers(0, 5)), max_size=5),
)  # fmt: skip
def test_good_rows_all_arrive_whatever_bad_rows_sit_between_them(
    fmt: str, rows: list[tuple[float, int, int]], bad: list[tuple[int, int]]
) -> None:
    base = datetime(2023, 11, 16, 18, 15)
    lines = [(_good_row(fmt, base + timedelta(seconds=s), i, o), False) for s, i, o in rows]
    for position, pick in sorted(bad, reverse=True):
        row = _BAD[fmt][pick % len(_BAD[fmt])].format(t=f"{base:%Y-%m-%dT%H:%M:%S}")
        lines.insert(min(position, len(lines)), (row, True))
    header = ["TIMESTAMP,ContextTokens,GeneratedTokens"] if fmt == "azure" else []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.txt"
        path.write_text("\n".join(header + [text for text, _ in lines]) + "\n", encoding="utf-8")
        trace = read_requests(path, fmt)
    assert sorted(trace.input_tokens.tolist()) == sorted(n_in for _, n_in, _ in rows)
    seconds = [s for s, _, _ in rows]
    assert math.isclose(trace.span_s, max(seconds) - min(seconds), abs_tol=1e-3)
    first = len(header) + 1  # the file's line of lines[0]
    assert [int(note.split(":")[1]) for note in trace.notes] == [
        first + k for k, (_, is_bad) in enumerate(lines) if is_bad
    ]
