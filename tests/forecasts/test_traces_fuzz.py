"""Fuzzing the three CSV trace formats: whatever the file holds, ``read_trace`` returns a
result or raises ``TraceFormatError`` naming the file (never anything else, never a huge
allocation), and a file of good rows with unusual but valid spellings reads every row."""

from __future__ import annotations

import gzip
import math
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from forecasts import MAX_INTENSITY_G_PER_KWH, TraceFormatError, read_trace
from forecasts.trace_grid import MAX_TRACE_POINTS
from forecasts.trace_rows import TRACE_FORMATS
from tests.fuzzing import examples

HEADERS = [
    [f.time, f.zone, f.lifecycle, *(c for c in (f.direct, f.estimated) if c)] for f in TRACE_FORMATS
]

_times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
    timezones=st.one_of(
        st.none(), st.just(UTC),
        st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-1439, 1439)),
    ),
)  # fmt: skip
_time_text = st.one_of(
    _times.map(lambda t: t.isoformat()),
    _times.map(lambda t: t.isoformat().replace("+00:00", "Z")),
    st.sampled_from(["", "yesterday", "2023-02-30T00:00Z", "0001-01-01T00:00:00+14:00",
                     "9999-12-31T23:59:59-14:00", "2023-01-01T00:00:00.5Z"]),
    st.text(max_size=30),
)  # fmt: skip
_value_text = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers().map(str),
    st.sampled_from(["", " ", "nan", "-0", "1e309", "1" * 5000, "0x10", "1_000"]),
    st.text(max_size=12),
)
_flag_text = st.one_of(st.sampled_from(["true", "True", "FALSE", "1", "0", "", "yes", "maybe"]),
                       st.text(max_size=6))  # fmt: skip
_zone_text = st.one_of(
    st.sampled_from(["DE", "US-CAL-CISO", "de", " DE ", ""]), st.text(max_size=8)
)


def _cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


@st.composite
def _csv(draw: st.DrawFn) -> str:
    header = list(draw(st.sampled_from(HEADERS)))
    if draw(st.booleans()):
        header = draw(st.permutations(header))
    lines = [",".join(_cell(h) for h in header)]
    for _ in range(draw(st.integers(0, 12))):
        row = []
        for name in header:
            if name in {f.time for f in TRACE_FORMATS}:
                row.append(draw(_time_text))
            elif name in {f.zone for f in TRACE_FORMATS}:
                row.append(draw(_zone_text))
            elif name in {f.estimated for f in TRACE_FORMATS}:
                row.append(draw(_flag_text))
            else:
                row.append(draw(_value_text))
        if draw(st.integers(0, 9)) == 0:
            row = row[: draw(st.integers(0, len(row)))]
        lines.append(",".join(_cell(c) for c in row))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n", "\x00"]))


def _read(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"trace{suffix}"
        path.write_bytes(data)
        try:
            result = read_trace(path, fill=True)
        except TraceFormatError as exc:
            assert str(path) in str(exc)
            return
        for series in result.series.values():
            assert 0 < len(series) <= MAX_TRACE_POINTS
            assert series.end > series.start  # its last point's end is a time
            values = series.values_g_per_kwh
            assert all(math.isnan(v) or 0 <= v <= MAX_INTENSITY_G_PER_KWH for v in values)


@settings(max_examples=examples(0.35))
@given(_csv(), st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]))
@example(
    "datetime,zone,carbon_intensity_g_per_kwh\n9999-12-31T22:00Z,XX,5\n9999-12-31T23:00Z,XX,5\n",
    "utf-8",
)  # the end of its last hour: year 10000
@example(
    "datetime,zone,carbon_intensity_g_per_kwh\n0001-01-01T00:00Z,XX,5\n9000-01-01T00:00Z,XX,5\n",
    "utf-8",
)  # a step of 9,000 years, two of them
def test_any_csv_in_the_three_formats_reads_or_fails_with_its_error(text: str, enc: str) -> None:
    _read(text.encode(enc, errors="replace"), ".csv")


@settings(max_examples=examples(1.5))
@given(st.binary(max_size=400), st.booleans())
def test_any_bytes_read_or_fail_with_the_trace_error(data: bytes, zipped: bool) -> None:
    _read(gzip.compress(data) if zipped else data, ".csv.gz" if zipped else ".csv")


_BAD_ROWS = st.sampled_from([
    "yesterday,XX,5", "2023-01-01T00:00Z,XX,abc", "2023-01-01T00:00Z,XX,-1",
    "2023-01-01T00:00Z,XX", "2023-01-01T00:00Z,,5", "2023-01-01T00:00Z,XX,inf",
    "0001-01-01T00:00:00+14:00,XX,1", '"unterminated,XX,1', "2023-01-01T00:00Z,XX,10000.5",
    "2023-01-01T00:00Z,XX,1e5",
])  # fmt: skip


@settings(max_examples=examples(1.05))
@given(
    st.sampled_from(TRACE_FORMATS),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
                 timezones=st.just(UTC)),
    st.lists(st.floats(0, MAX_INTENSITY_G_PER_KWH), min_size=1, max_size=30),
    st.sampled_from(["Z", "+00:00", "+05:30"]),
    st.lists(st.tuples(st.integers(0, 40), _BAD_ROWS), max_size=5),
)  # fmt: skip
def test_good_rows_all_arrive_whatever_bad_rows_sit_between_them(
    fmt: object, start: datetime, values: list[float], tz: str, bad: list[tuple[int, str]]
) -> None:
    assert fmt in TRACE_FORMATS
    f = TRACE_FORMATS[TRACE_FORMATS.index(fmt)]  # type: ignore[arg-type]
    start = start.replace(minute=0, second=0, microsecond=0)
    lines = []
    for k, value in enumerate(values):
        t = start + timedelta(hours=k)
        if tz == "+05:30":
            t = t.astimezone(timezone(timedelta(hours=5, minutes=30)))
        text = t.isoformat().replace("+00:00", tz) if tz != "+05:30" else t.isoformat()
        lines.append(f"{text},XX,{value!r}")
    plain = [(p, row) for p, row in bad if '"' not in row]
    for position, row in sorted(plain, reverse=True):
        lines.insert(min(position, len(lines)), row)
    quoted = len(plain) < len(bad)
    if quoted:  # an open quote swallows every line after it: only ever the last line
        lines.append('"unterminated,XX,1')
    inserted = len(plain) + quoted
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_text(f"{f.time},{f.zone},{f.lifecycle}\n" + "\n".join(lines) + "\n")
        result = read_trace(path)
    assert list(result.zone("XX").values_g_per_kwh) == values
    reported = sum(i.count for i in result.issues if i.kind == "bad_row")
    assert reported == inserted
