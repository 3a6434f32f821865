"""Request-trace adapters: Azure LLM inference CSV, Mooncake JSONL and carbond JSONL.

Each reader returns a :class:`RequestTrace`: request arrival offsets (seconds from the trace's
first request) with prompt and output token counts, as NumPy arrays sorted by arrival.

- ``azure``: ``TIMESTAMP,ContextTokens,GeneratedTokens`` (Patel et al., Splitwise, ISCA'24);
  timestamps carry 7 fractional digits and no zone (read as UTC; an offset, where a row has
  one, is honoured).
- ``mooncake``: one JSON object per line with ``timestamp`` (ms, relative), ``input_length``,
  ``output_length`` (Qin et al., Mooncake, FAST'25).
- ``carbond``: one *job* per line (already batched): ``arrival`` (RFC 3339 or seconds),
  ``input_tokens`` and ``output_tokens`` (per request, means; output at least 1) and
  ``requests`` (default 1).
  The trace is marked ``prebatched``: replay keeps its jobs as they are.

Counts are bounded as a queue line's are: up to :data:`MAX_TOKENS` tokens per request and
:data:`MAX_REQUESTS` requests per job. Files ending in ``.gz`` are decompressed and a leading
UTF-8 byte-order mark is dropped, as for the intensity traces.
"""

from __future__ import annotations

import csv
import json
import re
import zlib
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, TypeGuard

import numpy as np
import numpy.typing as npt

from daemon.replay.errors import ReplayInputError
from forecasts.trace_rows import open_text
from policies.footprint.workload import MAX_REQUESTS, MAX_TOKENS

__all__ = [
    "TRACE_FORMATS",
    "IntArray",
    "RequestTrace",
    "TraceFormat",
    "read_requests",
]

TraceFormat = Literal["carbond", "azure", "mooncake"]
TRACE_FORMATS: Final[tuple[TraceFormat, ...]] = ("carbond", "azure", "mooncake")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class RequestTrace:
    """Requests sorted by arrival. ``offset_s`` is seconds after the first request.

    ``requests[i]`` is how many requests row ``i`` stands for (1 for request traces; a job's
    request count when ``prebatched``).
    """

    source: str
    offset_s: FloatArray
    input_tokens: IntArray
    output_tokens: IntArray
    requests: IntArray
    prebatched: bool = False
    notes: tuple[str, ...] = ()  # the bad rows skipped (file:line: why), as read_requests says

    def __len__(self) -> int:
        return len(self.offset_s)

    @property
    def span_s(self) -> float:
        """Seconds from the first to the last arrival."""
        return float(self.offset_s[-1]) if len(self) else 0.0

    @classmethod
    def from_rows(
        cls, source: str, rows: list[tuple[float, int, int, int]], prebatched: bool = False
    ) -> RequestTrace:
        """Sort ``(arrival_s, input_tokens, output_tokens, requests)`` rows into a trace.

        Raises:
            ReplayInputError: no rows.
        """
        columns = _Columns()
        for row in rows:
            columns.add(row)
        return columns.trace(source, prebatched)


@dataclass(slots=True)
class _Columns:
    """Rows as they are read, kept as four packed columns: 32 bytes a row, where a list of
    tuples took ~200 (a trace of 10 million requests held ~2 GB before it was sorted)."""

    arrival_s: array[float] = field(default_factory=lambda: array("d"))
    input_tokens: array[int] = field(default_factory=lambda: array("q"))
    output_tokens: array[int] = field(default_factory=lambda: array("q"))
    requests: array[int] = field(default_factory=lambda: array("q"))

    def add(self, row: tuple[float, int, int, int]) -> None:
        self.arrival_s.append(row[0])
        self.input_tokens.append(row[1])
        self.output_tokens.append(row[2])
        self.requests.append(row[3])

    def trace(self, source: str, prebatched: bool) -> RequestTrace:
        """The rows sorted by arrival (stably) as a trace.

        Raises:
            ReplayInputError: no rows.
        """
        if not self.arrival_s:
            raise ReplayInputError("no requests", file=source)
        arrival = np.frombuffer(self.arrival_s, dtype=np.float64)
        order: slice | IntArray = slice(None)  # in order, as traces mostly are: no copies
        if np.any(arrival[1:] < arrival[:-1]):
            order = np.argsort(arrival, kind="stable")
            arrival = arrival[order]

        def column(values: array[int]) -> IntArray:
            out: IntArray = np.frombuffer(values, dtype=np.int64)[order]
            return out

        return RequestTrace(
            source,
            arrival - arrival[0],
            column(self.input_tokens),
            column(self.output_tokens),
            column(self.requests),
            prebatched,
        )


At = tuple[Path, int]  # a row's file and line


def _bad(at: At, field: str | None, problem: str) -> ReplayInputError:
    """The error of a bad row at ``at`` (``FILE:LINE: PROBLEM``), ``field`` its column or key."""
    return ReplayInputError(problem, file=at[0], line=at[1], field=field)


def _tokens(value: object, at: At, name: str, least: int = 0, most: int = MAX_TOKENS) -> int:
    """A count from ``least`` to ``most`` (a larger one used to wrap around in the int64
    arrays, or to overflow the deadline's date, with no file or line named). A JSON number
    with no fraction (``1e3``, ``1000.0``) is its integer, as a queue line reads it (until
    2026-12-06 the row was skipped as "not an integer"); ``1000.5`` is not one."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        tokens = int(str(value).strip())
    except ValueError:
        raise _bad(at, name, f"{name} is not an integer: {value!r}") from None
    if tokens < least:
        raise _bad(at, name, f"{name} must be >= {least}, got {tokens}")
    if tokens > most:
        raise _bad(at, name, f"{name} must be <= {most:,}, got {tokens:,}")
    return tokens


_FRACTION = re.compile(r"[.,](\d+)")  # a second's digits: 7 in Azure's, past what datetime keeps


def _azure_time(value: str, at: At) -> float:
    """Unix seconds of a TIMESTAMP: UTC without an offset, converted from its offset with one
    (every row used to be read as UTC, its offset dropped or, after a fraction, the row
    skipped); the fraction's digits are added as written."""
    text = value.strip()
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise _bad(at, "TIMESTAMP", f"TIMESTAMP is not a time: {value!r}") from None
    base = stamp.replace(microsecond=0, tzinfo=UTC).timestamp()
    offset = stamp.utcoffset()
    if offset is not None:
        base -= offset.total_seconds()
    fraction = _FRACTION.search(text)
    return base + (float(f"0.{fraction[1]}") if fraction else 0.0)


Row = tuple[float, int, int, int]  # arrival (s), input tokens, output tokens, requests
Skip = Callable[[ReplayInputError], None]  # a bad row's error, the row left out


def _read_azure(path: Path, skip: Skip) -> Iterator[Row]:
    with open_text(path) as handle:
        reader = csv.DictReader(handle)
        try:
            yield from _azure_rows(path, reader, skip)
        except csv.Error as exc:  # a field past csv's limit (an unclosed quote)
            line = reader.reader.line_num  # the DictReader's own count lags a row on an error
            raise ReplayInputError(f"not CSV ({exc})", file=path, line=line) from exc


def _azure_rows(path: Path, reader: csv.DictReader[str], skip: Skip) -> Iterator[Row]:
    # a header written "TIMESTAMP, ContextTokens, GeneratedTokens" (a space after each comma,
    # as a spreadsheet or pandas may write it) read as missing its last two columns
    reader.fieldnames = [name.strip() for name in reader.fieldnames or ()]
    missing = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"} - set(reader.fieldnames)
    if missing:
        raise ReplayInputError(f"missing column(s) {', '.join(sorted(missing))}", file=path, line=1)
    for name in ("TIMESTAMP", "ContextTokens", "GeneratedTokens"):  # csv read the last one
        if reader.fieldnames.count(name) > 1:
            raise ReplayInputError(
                f"column {name} given twice in the header", file=path, line=1, field=name
            )
    for row in reader:
        at = (path, reader.line_num)  # the file's line: blank lines are not rows
        try:
            # the fields past the header's, under None: an unquoted "1,024" was read as
            # ContextTokens 1, GeneratedTokens 24 (a trailing comma's empty field is read)
            extra = row.pop(None, None) or []  # a list
            if any(value.strip() for value in extra):
                width = len(reader.fieldnames)
                raise _bad(at, None, f"{width + len(extra)} fields, header has {width}")
            cells = sum(value is not None for value in row.values())
            if cells < 3:  # a short row: csv fills the missing columns with None
                raise _bad(at, None, f"{cells} of the 3 columns")
            yield (
                _azure_time(row["TIMESTAMP"], at),
                _tokens(row["ContextTokens"], at, "ContextTokens"),
                _tokens(row["GeneratedTokens"], at, "GeneratedTokens"),
                1,
            )
        except ReplayInputError as bad:
            skip(bad)


def _json_lines(
    path: Path, skip: Skip, parse: Callable[[dict[str, object], At], Row]
) -> Iterator[Row]:
    """``parse(obj, at)`` of each line's JSON object; a bad line is skipped."""
    with open_text(path) as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            at = (path, line)
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                skip(_bad(at, None, f"not JSON ({exc.msg})"))
                continue
            except ValueError as exc:  # an integer past Python's 4300 digits (a traceback)
                skip(_bad(at, None, f"not JSON ({str(exc).split(';')[0]})"))
                continue
            if not isinstance(obj, dict):
                skip(_bad(at, None, "expected a JSON object"))
                continue
            try:
                yield parse(obj, at)
            except ReplayInputError as bad:
                skip(bad)


def _field(obj: dict[str, object], name: str, at: At) -> object:
    try:
        return obj[name]
    except KeyError:
        raise _bad(at, name, f"missing field {name!r}") from None


# Arrivals as numbers are bounded by the Unix seconds of years 1 to 9999 (an RFC 3339 time's
# range): a 400-digit integer was an OverflowError traceback, and -1.7e308 with 1.7e308 an
# offset of inf (a NumPy warning, then no job at all).
_FIRST_S: Final = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_LAST_S: Final = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _mooncake_row(obj: dict[str, object], at: At) -> Row:
    stamp = _field(obj, "timestamp", at)
    if not (_number(stamp) and -_LAST_S * 1000 <= stamp <= _LAST_S * 1000):
        raise _bad(
            at,
            "timestamp",
            f"timestamp must be a number of ms up to {_LAST_S * 1000:.3g} in size, "
            f"got {repr(stamp)[:40]}",
        )
    return (
        float(stamp) / 1000.0,
        _tokens(_field(obj, "input_length", at), at, "input_length"),
        _tokens(_field(obj, "output_length", at), at, "output_length"),
        1,
    )


def _read_mooncake(path: Path, skip: Skip) -> Iterator[Row]:
    return _json_lines(path, skip, _mooncake_row)


def _carbond_time(value: object, at: At) -> float:
    if _number(value):
        if not _FIRST_S <= value <= _LAST_S:
            raise _bad(
                at,
                "arrival",
                f"arrival must be Unix seconds of years 1 to 9999, got {repr(value)[:40]}",
            )
        return float(value)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise _bad(at, "arrival", f"arrival is not RFC 3339 or seconds: {value!r}") from None
    if parsed.tzinfo is None:
        raise _bad(at, "arrival", f"arrival needs a time zone: {value!r}")
    return parsed.timestamp()


def _carbond_row(obj: dict[str, object], at: At) -> Row:
    arrival = _carbond_time(_field(obj, "arrival", at), at)
    n_in = _tokens(_field(obj, "input_tokens", at), at, "input_tokens")
    # a job's output_tokens is kept as it is (a request trace's mean is raised to 1)
    n_out = _tokens(_field(obj, "output_tokens", at), at, "output_tokens", least=1)
    requests = _tokens(obj.get("requests", 1), at, "requests", 1, MAX_REQUESTS)
    return arrival, n_in, n_out, requests


def _read_carbond(path: Path, skip: Skip) -> Iterator[Row]:
    return _json_lines(path, skip, _carbond_row)


_READERS: Final[dict[str, Callable[[Path, Skip], Iterator[Row]]]] = {
    "azure": _read_azure,
    "mooncake": _read_mooncake,
    "carbond": _read_carbond,
}


MAX_SKIPPED_LISTED = 10  # bad rows named one by one in the notes; the rest are counted


def read_requests(path: Path, fmt: str) -> RequestTrace:
    """Read the request trace at ``path`` in format ``fmt`` (see the module docstring).

    A bad row (a field that is not a number or a time, a negative count, a non-empty field
    past the header's, a line that is not a JSON object) is left out and named in the trace's
    ``notes`` (``file:line: why; row skipped``, the first :data:`MAX_SKIPPED_LISTED`, then how
    many more): the rest of the trace is read, as the intensity traces are.

    Raises:
        ReplayInputError: an unknown format, a missing column, a file that cannot be read or
            is not UTF-8, or no good row at all (named by file, and line where there is one).
    """
    try:
        reader = _READERS[fmt]
    except KeyError:
        known = ", ".join(TRACE_FORMATS)
        raise ReplayInputError(
            f"unknown jobs format {fmt!r} (known: {known})", field="--jobs-format"
        ) from None
    skipped: list[str] = []

    def skip(bad: ReplayInputError) -> None:
        skipped.append(f"{bad}; row skipped")

    columns = _Columns()
    try:
        for row in reader(path, skip):
            columns.add(row)
    except OSError as exc:  # gzip's BadGzipFile too
        raise ReplayInputError(f"cannot read ({exc.strerror or exc})", file=path) from exc
    except (EOFError, zlib.error) as exc:  # a .gz cut short or corrupt
        raise ReplayInputError(f"cannot read ({exc})", file=path) from exc
    except UnicodeDecodeError as exc:
        raise ReplayInputError("not UTF-8 text", file=path) from exc
    if not columns.arrival_s and skipped:
        raise ReplayInputError(f"no good row ({len(skipped)} bad; {skipped[0]})", file=path)
    notes = skipped[:MAX_SKIPPED_LISTED]
    if len(skipped) > MAX_SKIPPED_LISTED:
        notes.append(f"{path}: {len(skipped) - MAX_SKIPPED_LISTED} more bad rows skipped")
    trace = columns.trace(str(path), prebatched=fmt == "carbond")
    return replace(trace, notes=tuple(notes))
