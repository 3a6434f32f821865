"""Fuzzing the measured power CSV (a site's ``pv_csv`` and ``other_load_csv``): whatever the
file holds, ``load_power_csv`` returns an equally spaced series of powers from 0 to
``MAX_POWER_W`` or raises ``SolarInputError`` naming the file (and the line and field of a
bad row), never anything else; a file of good rows in any spelling of their times reads
every row."""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from forecasts.errors import SolarInputError
from forecasts.solar import MAX_POWER_W, load_power_csv
from tests.fuzzing import examples

_zones = st.one_of(
    st.none(), st.just(UTC), st.builds(lambda m: timezone(timedelta(minutes=m)),
                                       st.integers(-1439, 1439)),
)  # fmt: skip
_times = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31),
                      timezones=_zones)  # fmt: skip
_time_text = st.one_of(
    _times.map(lambda t: t.isoformat()),
    _times.map(lambda t: t.isoformat().replace("+00:00", "Z")),
    st.sampled_from(["", "yesterday", "2023-02-30T00:00Z", "0001-01-01T00:00:00+14:00",
                     "9999-12-31T23:59:59-14:00", "2023-06-05T00:00:00.5Z", "2023-06-05"]),
    st.text(max_size=25),
)  # fmt: skip
_power_text = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(0, MAX_POWER_W).map(repr),
    st.sampled_from(["", " ", "nan", "-0", "1e309", "1" * 5000, "0x10", "1_000", "1e10"]),
    st.text(max_size=10),
)
_HEADERS = [["datetime", "power_w"], ["power_w", "datetime"], ["datetime", "power_w", "note"],
            ["datetime"], ["time", "power_w"], []]  # fmt: skip


def _cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


@st.composite
def _csv(draw: st.DrawFn) -> str:
    header = draw(st.sampled_from(_HEADERS))
    lines = [",".join(header)]
    for _ in range(draw(st.integers(0, 8))):
        cells = [draw(_time_text) if name in {"datetime", "time"} else draw(_power_text)
                 for name in header]  # fmt: skip
        if draw(st.integers(0, 9)) == 0:
            cells = cells[: draw(st.integers(0, len(cells)))] + ["x"] * draw(st.integers(0, 2))
        lines.append(",".join(_cell(c) for c in cells))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n", "\n\n"]))


def _read(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pv.csv"
        path.write_bytes(data)
        try:
            series = load_power_csv(path)
        except SolarInputError as exc:
            assert str(exc).startswith(str(path)), exc
            return
    assert series.start.tzinfo is not None and series.start.utcoffset() == timedelta(0)
    assert series.step_s > 0 and len(series.values_w) >= 2
    assert all(math.isfinite(v) and 0 <= v <= MAX_POWER_W for v in series.values_w)


@settings(max_examples=examples(0.35))
@given(_csv(), st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]))
@example("datetime,power_w\n0001-01-01T00:00:00+14:00,1\n0001-01-01T01:00:00+14:00,1\n", "utf-8")
@example("datetime,power_w\n9999-12-31T22:00:00-14:00,1\n9999-12-31T23:00:00-14:00,1\n", "utf-8")
def test_any_power_csv_reads_or_fails_with_the_solar_error(text: str, encoding: str) -> None:
    _read(text.encode(encoding, errors="replace"))


@settings(max_examples=examples(0.5))
@given(st.binary(max_size=300))
def test_any_bytes_read_or_fail_with_the_solar_error(data: bytes) -> None:
    _read(data)


@settings(max_examples=examples(0.35))
@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
                 timezones=st.just(UTC)),
    st.sampled_from([60, 300, 900, 3600]),
    st.lists(st.floats(0, MAX_POWER_W), min_size=2, max_size=30),
    _zones,
)  # fmt: skip
def test_good_rows_all_read_whatever_their_time_zone(
    start: datetime, step_s: int, values: list[float], zone: timezone | None
) -> None:
    start = start.replace(microsecond=0)
    rows = []
    for k, value in enumerate(values):
        t = start + timedelta(seconds=k * step_s)
        text = t.replace(tzinfo=None).isoformat() if zone is None else t.astimezone(zone)
        rows.append(f"{text if isinstance(text, str) else text.isoformat()},{value!r}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pv.csv"
        path.write_text("datetime,power_w\n" + "\n".join(rows) + "\n", encoding="utf-8")
        series = load_power_csv(path)
    assert (series.start, series.step_s, list(series.values_w)) == (start, step_s, values)
