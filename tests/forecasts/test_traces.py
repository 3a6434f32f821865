"""CSV traces: the three formats, data problems reported, bad files rejected with a location."""

from __future__ import annotations

import gzip
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from forecasts import MAX_INTENSITY_G_PER_KWH, TraceFormatError, read_trace

PORTAL_HEADER = (
    "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
    "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
    "Data Source,Data Estimated,Data Estimation Method\n"
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_portal_export_with_pandas_style_flags(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "FR_2023_hourly.csv",
        PORTAL_HEADER
        + "2023-01-01 00:00:00,France,France,FR,40.4,60.9,91.2,15.7,rte,False,\n"
        + "2023-01-01 01:00:00,France,France,FR,40.2,60.8,91.4,16.5,rte,True,TIME_SLICER\n",
    )
    result = read_trace(path)
    s = result.zone("fr")
    assert result.format == "portal" and result.issues == ()
    assert s.start == datetime(2023, 1, 1, tzinfo=UTC) and s.step_s == 3600
    assert list(s.values_g_per_kwh) == [60.9, 60.8]
    assert list(s.is_estimated) == [False, True]
    assert list(read_trace(path, kind="direct").zone("FR").values_g_per_kwh) == [40.4, 40.2]


def test_normalized_gzip(tmp_path: Path) -> None:
    path = tmp_path / "n.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(
            "datetime_utc,zone,carbon_intensity_gco2_per_kwh,carbon_intensity_direct_gco2_per_kwh,"
            "low_carbon_percentage,renewable_percentage,is_estimated,estimation_method,"
            "data_source,source_repo,source_file\n"
            "2023-01-01T00:00:00Z,DE,300,250,,,false,,,,\n"
            "2023-01-01T00:00:00Z,GB,200,150,,,true,,,,\n"
            "2023-01-01T01:00:00Z,DE,310,260,,,false,,,,\n"
        )
    result = read_trace(path)
    assert result.format == "normalized"
    assert set(result.series) == {"DE", "GB"}
    assert list(result.zone("DE").values_g_per_kwh) == [300.0, 310.0]
    assert set(read_trace(path, zones=["gb"]).series) == {"GB"}
    # a zone the file lacks names the zones it has (was "no data rows for zones ['FR']")
    with pytest.raises(
        TraceFormatError, match=r"n\.csv\.gz: no rows for zone 'FR' \(has: DE, GB\)$"
    ):
        read_trace(path, zones=["FR"])
    with pytest.raises(TraceFormatError, match=r": no rows for zones 'ES', 'FR' \(has: DE, GB\)$"):
        read_trace(path, zones=["FR", "ES"])


def test_minimal_with_every_problem_reported(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "m.csv",
        "datetime,zone,carbon_intensity_g_per_kwh\n"
        "2023-01-01T02:00:00+00:00,XX,30\n"  # unsorted
        "2023-01-01T00:00:00+00:00,XX,10\n"
        "2023-01-01T02:00:00+01:00,XX,11\n"  # non-UTC offset: 01:00Z
        "2023-01-01T00:00:00+00:00,XX,12\n"  # duplicate of 00:00, last wins
        "2023-01-01T05:00:00,XX,\n",  # naive, empty value
    )
    result = read_trace(path)
    kinds = {i.kind for i in result.issues}
    assert {"unsorted", "non_utc_offset", "duplicate", "naive_time", "empty_value", "gap"} <= kinds
    s = result.zone("XX")
    values = list(s.values_g_per_kwh)
    assert values[:3] == [12.0, 11.0, 30.0]
    assert all(math.isnan(v) for v in values[3:])  # gap and empty value stay missing
    filled = read_trace(path, fill=True).zone("XX")
    assert filled.missing_count() == 0  # edges take the nearest known value
    assert filled.is_estimated[3:].all() and list(filled.values_g_per_kwh[3:]) == [30.0] * 3
    assert any(i.kind == "filled" for i in read_trace(path, fill=True).issues)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("time,value\n2023-01-01,1\n", r"x\.csv:1: unrecognised header"),
        (
            "datetime,zone,carbon_intensity_g_per_kwh\nyesterday,XX,1\n",
            r"x\.csv:2: column 'datetime'",
        ),
        (
            "datetime,zone,carbon_intensity_g_per_kwh\n2023-01-01T00:00Z,XX,abc\n",
            r"x\.csv:2: column 'carbon_intensity_g_per_kwh': not a number",
        ),
        (
            "datetime,zone,carbon_intensity_g_per_kwh\n2023-01-01T00:00Z,XX,-5\n",
            r"0 to 10,000 g/kWh: .-5.",
        ),
        ("datetime,zone,carbon_intensity_g_per_kwh\n2023-01-01T00:00Z,XX\n", r"x\.csv:2: 2 fields"),
        ("", r"x\.csv:1: empty file"),
        (  # found by the fuzzer: a ValueError from deep inside datetime
            "datetime,zone,carbon_intensity_g_per_kwh\n0001-01-01T00:00:00+14:00,XX,1\n",
            r"x\.csv:2: column 'datetime': date-time out of range",
        ),
        (  # two rows 8,000 years apart would have allocated 560 MB
            "datetime,zone,carbon_intensity_g_per_kwh\n2023-01-01T00:00Z,XX,1\n"
            "2023-01-01T01:00Z,XX,1\n9999-01-01T00:00Z,XX,1\n",
            r"x\.csv:4: zone XX: \d+ points of 3600 s",
        ),
        ("datetime,zone,carbon_intensity_g_per_kwh\n", "no data rows"),
        (  # the last column of the two was read, silently
            "datetime,zone,carbon_intensity_g_per_kwh,carbon_intensity_g_per_kwh\n"
            "2023-01-01T00:00Z,XX,1,2\n",
            r"x\.csv:1: column 'carbon_intensity_g_per_kwh': given 2 times in the header",
        ),
        (
            "datetime,zone,zone,carbon_intensity_g_per_kwh\n2023-01-01T00:00Z,XX,YY,1\n",
            r"x\.csv:1: column 'zone': given 2 times",
        ),
        (  # a step of 0 s: divide-by-zero warnings, then "inf points of 0 s"
            "datetime,zone,carbon_intensity_g_per_kwh\n2023-01-01T00:00Z,XX,1\n"
            "2023-01-01T00:00:00.5Z,XX,1\n2023-01-01T00:00:01Z,XX,1\n",
            r"x\.csv:3: zone XX: rows 0\.5 s apart; a trace's step is at least 1 s",
        ),
    ],
)
def test_bad_files_name_file_line_and_column(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(TraceFormatError, match=match):
        read_trace(_write(tmp_path, "x.csv", text))


@pytest.mark.parametrize("name", ["x.csv", "x.csv.gz"])
def test_binary_file_is_rejected(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\xff\xfe\x00garbage\x00")
    with pytest.raises(TraceFormatError, match=name.replace(".", r"\.")):
        read_trace(path)


def test_a_corrupt_gzip_trace_is_named(tmp_path: Path) -> None:
    """A .gz whose deflate stream is damaged (not its CRC) was a zlib.error traceback."""
    rows = "".join(f"2023-01-01T{h:02d}:00Z,XX,{100 + h}\n" for h in range(24)) * 20
    data = bytearray(gzip.compress(("datetime,zone,carbon_intensity_g_per_kwh\n" + rows).encode()))
    data[30:38] = b"\xff" * 8
    path = tmp_path / "x.csv.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(TraceFormatError, match=r"x\.csv\.gz.*Error -3 while decompressing"):
        read_trace(path)


@pytest.mark.shared_data
def test_reads_real_portal_export(shared_data: Path) -> None:
    path = shared_data / "carbon_intensity/electricitymaps_jasonm-jones/US-NW-PACW_2023_hourly.csv"
    result = read_trace(path)
    s = result.zone("US-NW-PACW")
    assert len(s) == 8760 and s.missing_count() == 24
    assert [i.kind for i in result.issues] == ["empty_value"]


def test_a_bad_row_is_skipped_and_reported_and_the_rows_around_it_kept(tmp_path: Path) -> None:
    header = "datetime,zone,carbon_intensity_g_per_kwh\n"
    rows = [f"2023-01-01T0{h}:00Z,XX,{100 * h}" for h in range(4)]
    rows[2] = "2023-01-01T02:00Z,XX,abc"
    result = read_trace(_write(tmp_path, "x.csv", header + "\n".join(rows) + "\n"))
    values = result.zone("XX").values_g_per_kwh
    assert list(values[[0, 1, 3]]) == [0.0, 100.0, 300.0] and math.isnan(values[2])
    [bad] = [i for i in result.issues if i.kind == "bad_row"]
    assert str(bad).startswith(f"{tmp_path / 'x.csv'}:4: XX: bad_row: column ")
    assert "not a number: 'abc'; row skipped" in str(bad)


def test_an_intensity_above_the_maximum_is_a_bad_row(tmp_path: Path) -> None:
    """12000 g/kWh (kg typed for g, or a broken export) was read as it stood, where the API
    client and every --intensity option refuse past MAX_INTENSITY_G_PER_KWH: the row is now
    skipped and reported like any other bad value; the maximum itself is read."""
    header = "datetime,zone,carbon_intensity_g_per_kwh\n"
    values_in = ["100", "200", "12000", f"{MAX_INTENSITY_G_PER_KWH:g}", "300", "1e5"]
    rows = [f"2023-01-01T0{h}:00Z,XX,{value}" for h, value in enumerate(values_in)]
    result = read_trace(_write(tmp_path, "x.csv", header + "\n".join(rows) + "\n"))
    values = result.zone("XX").values_g_per_kwh
    assert len(values) == 5  # the last row skipped: nothing after it
    assert list(values[[0, 1, 3, 4]]) == [100.0, 200.0, MAX_INTENSITY_G_PER_KWH, 300.0]
    assert math.isnan(values[2])
    assert [str(i) for i in result.issues if i.kind == "bad_row"] == [
        f"{tmp_path / 'x.csv'}:{line}: XX: bad_row: column 'carbon_intensity_g_per_kwh': "
        f"intensity must be 0 to 10,000 g/kWh: {text!r}; row skipped"
        for line, text in ((4, "12000"), (7, "1e5"))
    ]


@pytest.mark.parametrize("hours", [(0, 2, 3), (0, 1, 3), (3, 0, 2)])
def test_a_tie_between_two_steps_takes_the_shortest_whatever_the_rows_order(
    tmp_path: Path, hours: tuple[int, ...]
) -> None:
    """Rows 2 h then 1 h apart read as a 2 h step (the first time between rows found), the
    third row floored onto the second's point and its value lost; 1 h then 2 h apart read as
    hourly with a gap. Both are now hourly, the tie reported."""
    header = "datetime,zone,carbon_intensity_g_per_kwh\n"
    rows = [f"2023-01-01T0{h}:00Z,XX,{100 + h}" for h in hours]
    path = _write(tmp_path, "x.csv", header + "\n".join(rows) + "\n")
    result = read_trace(path)
    series = result.zone("XX")
    got = {h: series.values_g_per_kwh[h - min(hours)] for h in hours}
    assert series.step_s == 3600 and got == {h: 100.0 + h for h in hours}
    missing = min(set(range(min(hours), max(hours))) - set(hours)) - min(hours)
    assert math.isnan(series.values_g_per_kwh[missing])
    assert [str(i) for i in result.issues if i.kind == "step_tie"] == [
        f"{path}: XX: step_tie: rows 3600 and 7200 s apart equally often (1 each); the "
        "shortest step, 3600 s, taken"
    ]


def test_many_bad_rows_are_listed_then_counted(tmp_path: Path) -> None:
    header = "datetime,zone,carbon_intensity_g_per_kwh\n2023-01-01T00:00Z,XX,1\n"
    bad = "".join(f"2023-01-0{1 + k // 24}T{k % 24:02d}:30Z,XX,-{k}\n" for k in range(1, 26))
    result = read_trace(_write(tmp_path, "x.csv", header + bad))
    issues = [i for i in result.issues if i.kind == "bad_row"]
    assert len(issues) == 21 and issues[-1].count == 5 and "5 more bad rows" in issues[-1].message


def test_a_row_with_more_fields_than_the_header_is_skipped_and_reported(tmp_path: Path) -> None:
    """A decimal comma (123,45) was read as 123 g/kWh, the field past the header dropped
    without a word; an empty field from a trailing comma is still read."""
    header = "datetime,zone,carbon_intensity_g_per_kwh\n"
    rows = [f"2023-01-01T0{h}:00Z,XX,{100 * h}" for h in range(6)]
    rows[1], rows[3] = "2023-01-01T01:00Z,XX,123,45", "2023-01-01T03:00Z,XX,300,"
    result = read_trace(_write(tmp_path, "x.csv", header + "\n".join(rows) + "\n"))
    values = result.zone("XX").values_g_per_kwh
    assert list(values[[0, 2, 3, 4, 5]]) == [0.0, 200.0, 300.0, 400.0, 500.0]
    assert math.isnan(values[1])
    [bad] = [i for i in result.issues if i.kind == "bad_row"]
    assert str(bad) == f"{tmp_path / 'x.csv'}:3: XX: bad_row: 4 fields, header has 3; row skipped"


def test_offset_and_naive_notes_name_zone_first_line_and_count(tmp_path: Path) -> None:
    # until 2026-12-07 these printed "dst.csv: -: non_utc_offset: ..." (no line, no zone)
    path = _write(
        tmp_path,
        "dst.csv",
        "datetime,zone,carbon_intensity_g_per_kwh\n"
        "2023-01-01T00:00:00Z,AA,10\n"
        "2023-01-01T02:00:00+01:00,BB,11\n"  # line 3: BB's first offset
        "2023-01-01T01:00:00+00:00,AA,12\n"
        "2023-01-01T02:00:00,AA,13\n"  # line 5: AA's first naive time
        "2023-01-01T03:00:00+01:00,AA,14\n"  # line 6: AA's first offset
        "2023-01-01T04:00:00+01:00,AA,15\n"
        "2023-01-01T03:00:00,AA,16\n",
    )
    notes = {str(i) for i in read_trace(path).issues if i.kind in {"non_utc_offset", "naive_time"}}
    assert notes == {
        f"{path}:3: BB: non_utc_offset: 1 time with a UTC offset converted to UTC",
        f"{path}:6: AA: non_utc_offset: 2 times with a UTC offset converted to UTC",
        f"{path}:5: AA: naive_time: 2 times without offset taken as UTC",
    }
    counts = {(i.zone, i.kind): (i.line, i.count) for i in read_trace(path).issues}
    assert counts[("AA", "non_utc_offset")] == (6, 2)
    assert counts[("BB", "non_utc_offset")] == (3, 1)


def test_a_zone_spelt_in_two_cases_is_one_zone(tmp_path: Path) -> None:
    """Rows of ``DE`` then ``de``: until 2026-12-07 two series, of which the chain (zones
    are upper case there) kept one, so ``carbond intensity --zone DE --trace`` lost the
    other's hours with no note."""
    path = _write(
        tmp_path,
        "case.csv",
        "datetime,zone,carbon_intensity_g_per_kwh\n"
        "2024-01-01T00:00Z,DE,100\n2024-01-01T01:00Z,de,101\n2024-01-01T02:00Z,De,102\n",
    )
    result = read_trace(path)
    assert list(result.series) == ["DE"]
    assert list(result.zone("de").values_g_per_kwh) == [100.0, 101.0, 102.0]
