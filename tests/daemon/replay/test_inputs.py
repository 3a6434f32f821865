"""Replay inputs: request traces, tiling and batching, cluster files, intensity files."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from daemon.errors import UsageError
from daemon.replay.cluster import load_cluster
from daemon.replay.errors import ReplayInputError
from daemon.replay.inputs import load_setup
from daemon.replay.signals import ReplaySignals, join_zones, read_intensity
from daemon.replay.traces import read_requests
from daemon.replay.workload import WorkloadOptions, build_jobs, tile
from policies import Device
from policies.candidates import estimate_on
from policies.footprint import DEFAULT_GPU_CATALOG, GpuCatalog, estimate, get_runtime
from tests.daemon.replay.conftest import START, replay_inputs, write_azure, write_intensity


def test_azure_trace_is_read_in_arrival_order(tmp_path: Path) -> None:
    path = write_azure(tmp_path / "t.csv", [(10.5, 100, 5), (0.25, 200, 7), (30, 50, 1)])
    trace = read_requests(path, "azure")
    assert trace.offset_s.tolist() == pytest.approx([0.0, 10.25, 29.75])
    assert trace.input_tokens.tolist() == [200, 100, 50]
    assert trace.output_tokens.tolist() == [7, 5, 1]


def test_azure_timestamps_with_an_offset_are_converted(tmp_path: Path) -> None:
    """Every TIMESTAMP was read as UTC: '18:15:10+02:00' as 18:15:10 UTC, 2 h late, and with a
    fraction before the offset the row was skipped as 'not a time'."""
    path = tmp_path / "t.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                    "2023-11-16 18:15:00.5000000,1,1\n"
                    "2023-11-16 20:15:10+02:00,2,1\n"
                    "2023-11-16 13:15:20.2500000-05:00,3,1\n"
                    "2023-11-16T18:15:30Z,4,1\n", encoding="utf-8")  # fmt: skip
    trace = read_requests(path, "azure")
    assert trace.notes == () and trace.input_tokens.tolist() == [1, 2, 3, 4]
    assert trace.offset_s.tolist() == pytest.approx([0.0, 9.5, 19.75, 29.5])


def test_an_azure_header_with_spaces_after_its_commas_is_read(tmp_path: Path) -> None:
    """'TIMESTAMP, ContextTokens, GeneratedTokens' was 'missing column(s) ContextTokens,
    GeneratedTokens'."""
    path = tmp_path / "t.csv"
    path.write_text("TIMESTAMP, ContextTokens , GeneratedTokens\n"
                    "2023-11-16 18:15:00.5000000, 4808, 10\n"
                    "2023-11-16 18:15:01.5000000,3180,8\n", encoding="utf-8")  # fmt: skip
    trace = read_requests(path, "azure")
    assert trace.notes == () and trace.input_tokens.tolist() == [4808, 3180]
    assert trace.output_tokens.tolist() == [10, 8] and trace.offset_s.tolist() == [0.0, 1.0]


def test_a_trace_is_read_into_columns_not_a_tuple_per_row(tmp_path: Path) -> None:
    """Every row was kept as a tuple until the file was read: ~180 bytes a request at the
    peak (ten million requests, GBs); now about 40, in packed columns."""
    import tracemalloc

    rows = 20_000
    path = write_azure(tmp_path / "t.csv", [(i * 0.5, 100 + i % 7, 10) for i in range(rows)])
    tracemalloc.start()
    try:
        trace = read_requests(path, "azure")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(trace) == rows and trace.input_tokens[:8].tolist() == [100, 101, 102, 103, 104,
                                                                       105, 106, 100]  # fmt: skip
    assert peak < 64 * rows


def test_mooncake_and_carbond_lines(tmp_path: Path) -> None:
    moon = tmp_path / "m.jsonl"
    moon.write_text(
        "\n".join(json.dumps({"timestamp": t, "input_length": 9, "output_length": 3,
                              "hash_ids": [1]}) for t in (0, 1500, 500)) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    assert read_requests(moon, "mooncake").offset_s.tolist() == [0.0, 0.5, 1.5]
    jobs = tmp_path / "j.jsonl"
    jobs.write_text(
        '{"arrival": "2023-06-05T00:10:00Z", "input_tokens": 10, "output_tokens": 2, '
        '"requests": 64}\n{"arrival": "2023-06-05T00:00:00+00:00", "input_tokens": 5, '
        '"output_tokens": 1}\n',
        encoding="utf-8",
    )
    trace = read_requests(jobs, "carbond")
    assert trace.prebatched and trace.requests.tolist() == [1, 64]
    assert trace.offset_s.tolist() == [0.0, 600.0]


_GOOD = "2023-11-16 18:15:46.0000000"
_BAD_AZURE_ROWS = [  # (row, what its note says)
    ("yesterday,1,2", "TIMESTAMP is not a time: 'yesterday'"),
    (f"{_GOOD},abc,2", "ContextTokens is not an integer: 'abc'"),
    (f"{_GOOD},1e999,2", "ContextTokens is not an integer: '1e999'"),
    (f"{_GOOD},-3,2", "ContextTokens must be >= 0, got -3"),
    (f"{_GOOD},5", "2 of the 3 columns"),
    # wrapped around to -4503599627368104 in the int64 array, with no file or line named
    (
        f"{_GOOD},{10**23},2",
        "ContextTokens must be <= 10,000,000, got 100,000,000,000,000,000,000,000",
    ),
]


def test_bad_rows_are_skipped_and_named_the_rest_is_read(tmp_path: Path) -> None:
    """A bad row among good ones costs that row, not the trace (as intensity traces)."""
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens", f"{_GOOD},100,10"]
    for k, (row, _) in enumerate(_BAD_AZURE_ROWS):
        lines += [row, f"2023-11-16 18:16:{k:02d}.0000000,{200 + k},20"]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    trace = read_requests(path, "azure")
    assert trace.input_tokens.tolist() == [100, *range(200, 200 + len(_BAD_AZURE_ROWS))]
    assert trace.notes == tuple(
        f"{path}:{3 + 2 * k}: {why}; row skipped" for k, (_, why) in enumerate(_BAD_AZURE_ROWS)
    )
    moon = tmp_path / "m.jsonl"
    moon.write_text('{"timestamp": 0, "input_length": 9, "output_length": 3}\n[1]\n{bad\n'
                    '{"timestamp": Infinity, "input_length": 1, "output_length": 1}\n'
                    # an OverflowError and a ValueError traceback
                    f'{{"timestamp": {10**400}, "input_length": 1, "output_length": 1}}\n'
                    f'{{"timestamp": 1{"0" * 5000}, "input_length": 1, "output_length": 1}}\n',
                    encoding="utf-8")  # fmt: skip
    trace = read_requests(moon, "mooncake")
    size = "timestamp must be a number of ms up to 2.53e+14 in size, got"
    assert len(trace) == 1 and [n.split(": ", 1)[1] for n in trace.notes] == [
        "expected a JSON object; row skipped", "not JSON (Expecting property name enclosed in "
        "double quotes); row skipped", f"{size} inf; row skipped",
        f"{size} {str(10**400)[:40]}; row skipped",
        "not JSON (Exceeds the limit (4300 digits) for integer string conversion: value has "
        "5001 digits); row skipped",
    ]  # fmt: skip
    jobs = tmp_path / "j.jsonl"  # -1.7e308 to 1.7e308: an offset of inf, a NumPy warning
    jobs.write_text("".join(f'{{"arrival": {t}, "input_tokens": 1, "output_tokens": 1}}\n'
                            for t in (-1.7e308, 0, 60, 1.7e308)), encoding="utf-8")  # fmt: skip
    trace = read_requests(jobs, "carbond")
    assert trace.offset_s.tolist() == [0.0, 60.0] and [
        n.split(": ", 1)[1] for n in trace.notes
    ] == [
        f"arrival must be Unix seconds of years 1 to 9999, got {t}; row skipped"
        for t in ("-1.7e+308", "1.7e+308")
    ]


def test_a_job_line_past_the_queues_limits_is_skipped_and_named(tmp_path: Path) -> None:
    """A job of 9e12 requests overflowed its deadline's date (an OverflowError traceback), one
    of output_tokens 0 stopped the replay naming no file or line: each is now a skipped row."""
    good = '"arrival": "2023-06-05T00:00:00Z", "input_tokens": 10'
    path = tmp_path / "j.jsonl"
    path.write_text(f'{{{good}, "output_tokens": 2, "requests": 9000000000000}}\n'
                    f'{{{good}, "output_tokens": 0}}\n'
                    f'{{{good}, "output_tokens": 2, "requests": 1000000000}}\n',
                    encoding="utf-8")  # fmt: skip
    trace = read_requests(path, "carbond")
    assert trace.requests.tolist() == [1_000_000_000]
    assert trace.notes == (
        f"{path}:1: requests must be <= 1,000,000,000, got 9,000,000,000,000; row skipped",
        f"{path}:2: output_tokens must be >= 1, got 0; row skipped",
    )


def test_a_job_lines_counts_may_be_written_as_integral_json_numbers(tmp_path: Path) -> None:
    """JSON writes 1000 as 1e3 or 1000.0 as well (a pandas export does): such a line was
    skipped as "not an integer" where a queue line takes it; 1000.5 is still not a count."""
    good = '"arrival": "2023-06-05T00:00:00Z"'
    path = tmp_path / "j.jsonl"
    path.write_text(f'{{{good}, "input_tokens": 1e3, "output_tokens": 2.0, "requests": 64.0}}\n'
                    f'{{{good}, "input_tokens": 1000.5, "output_tokens": 2}}\n'
                    f'{{{good}, "input_tokens": 10, "output_tokens": 1E1, "requests": 1e12}}\n',
                    encoding="utf-8")  # fmt: skip
    trace = read_requests(path, "carbond")
    assert trace.input_tokens.tolist() == [1000]
    assert trace.output_tokens.tolist() == [2] and trace.requests.tolist() == [64]
    assert trace.notes == (
        f"{path}:2: input_tokens is not an integer: 1000.5; row skipped",
        f"{path}:3: requests must be <= 1,000,000,000, got 1,000,000,000,000; row skipped",
    )
    moon = tmp_path / "m.jsonl"
    moon.write_text('{"timestamp": 0, "input_length": 5e2, "output_length": 3.0}\n'
                    '{"timestamp": 9, "input_length": 5, "output_length": 0.5}\n',
                    encoding="utf-8")  # fmt: skip
    trace = read_requests(moon, "mooncake")
    assert trace.input_tokens.tolist() == [500] and trace.output_tokens.tolist() == [3]
    assert trace.notes == (f"{moon}:2: output_length is not an integer: 0.5; row skipped",)


def test_an_azure_row_with_more_fields_than_the_header_is_skipped_and_named(
    tmp_path: Path,
) -> None:
    """An unquoted '1,024' was read as ContextTokens=1, GeneratedTokens=24, the field past the
    header dropped without a word; an empty field from a trailing comma is still read."""
    path = tmp_path / "t.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                    f"{_GOOD},1,024,10\n"
                    f"{_GOOD},5,2,\n"
                    f"{_GOOD},6,3,,x\n", encoding="utf-8")  # fmt: skip
    trace = read_requests(path, "azure")
    assert trace.input_tokens.tolist() == [5] and trace.output_tokens.tolist() == [2]
    assert trace.notes == (
        f"{path}:2: 4 fields, header has 3; row skipped",
        f"{path}:4: 5 fields, header has 3; row skipped",
    )


def test_traces_are_opened_as_the_intensity_files_are(tmp_path: Path) -> None:
    """A spreadsheet's byte-order mark cost an Azure CSV its TIMESTAMP column and a JSONL file
    its first line, and a .gz trace was 'not UTF-8 text' (the intensity files read both)."""
    azure = write_azure(tmp_path / "t.csv", [(0.0, 100, 5), (10.0, 200, 7)])
    text = azure.read_text(encoding="utf-8")
    azure.write_text(text, encoding="utf-8-sig")
    assert read_requests(azure, "azure").input_tokens.tolist() == [100, 200]
    zipped = tmp_path / "t.csv.gz"
    zipped.write_bytes(gzip.compress(text.encode()))
    assert read_requests(zipped, "azure").input_tokens.tolist() == [100, 200]
    moon = tmp_path / "m.jsonl"
    moon.write_text('{"timestamp": 0, "input_length": 9, "output_length": 3}\n'
                    '{"timestamp": 500, "input_length": 8, "output_length": 2}\n',
                    encoding="utf-8-sig")  # fmt: skip
    trace = read_requests(moon, "mooncake")
    assert trace.input_tokens.tolist() == [9, 8] and trace.notes == ()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(moon.read_bytes())[:20])
    with pytest.raises(ReplayInputError, match=f"{cut}: cannot read .*ended before"):
        read_requests(cut, "mooncake")


def test_a_csv_error_names_its_line_and_blank_lines_keep_the_count(tmp_path: Path) -> None:
    """A field past csv's size limit was a csv.Error traceback; after a blank line every
    skipped row was named a line too early."""
    path = tmp_path / "t.csv"
    path.write_text(f"TIMESTAMP,ContextTokens,GeneratedTokens\n{_GOOD},1,1\n\nx,1,1\n",
                    encoding="utf-8")  # fmt: skip
    assert read_requests(path, "azure").notes == (
        f"{path}:4: TIMESTAMP is not a time: 'x'; row skipped",
    )
    path.write_text(f'TIMESTAMP,ContextTokens,GeneratedTokens\n{_GOOD},1,1\n\n{_GOOD},"'
                    + "1" * 200_000 + '",1\n', encoding="utf-8")  # fmt: skip
    with pytest.raises(ReplayInputError, match=f"{path}:4: not CSV .*field limit"):
        read_requests(path, "azure")


def test_an_intensity_files_skipped_rows_become_notes(tmp_path: Path) -> None:
    path = write_intensity(tmp_path / "qc.csv", "CA-QC", [30.0] * 48, START)
    path.write_text(path.read_text(encoding="utf-8") + "garbage,X,X,CA-QC,5\n", encoding="utf-8")
    notes: list[str] = []
    series = read_intensity(path, notes)
    assert set(series) == {"CA-QC"} and len(series["CA-QC"].values_g_per_kwh) >= 48
    assert len(notes) == 1 and f"{path}:50" in notes[0] and "row skipped" in notes[0]
    clean: list[str] = []
    read_intensity(write_intensity(tmp_path / "ok.csv", "CA-QC", [30.0] * 48, START), clean)
    assert clean == []


def test_past_ten_bad_rows_the_rest_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + f"{_GOOD},1,1\n"
                    + "x,1,1\n" * 25, encoding="utf-8")  # fmt: skip
    notes = read_requests(path, "azure").notes
    assert len(notes) == 11 and notes[-1] == f"{path}: 15 more bad rows skipped"


@pytest.mark.parametrize(
    ("fmt", "text", "message"),
    [
        ("azure", "TIMESTAMP,ContextTokens\n", "missing column"),
        ("azure", "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,2\n",
         r"no good row \(1 bad; .*:2: TIMESTAMP"),
        ("azure", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,-1,2\n", ">= 0"),
        ("azure", "TIMESTAMP,ContextTokens,GeneratedTokens\n", "no requests"),
        # the last ContextTokens was read, silently
        ("azure", "TIMESTAMP,ContextTokens,GeneratedTokens,ContextTokens\n"
                  "2023-11-16 18:15:46,1,2,3\n", ":1: column ContextTokens given twice"),
        ("mooncake", '{"timestamp": 0, "input_length": 1}\n', "output_length"),
        ("mooncake", "{not json\n", ":1: not JSON"),
        ("carbond", '{"arrival": "2023-06-05T00:00:00", "input_tokens": 1, '
                    '"output_tokens": 1}\n', "time zone"),
        ("nope", "", "unknown jobs format"),
    ],
)  # fmt: skip
def test_bad_traces_name_the_file_and_line(
    tmp_path: Path, fmt: str, text: str, message: str
) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReplayInputError, match=message) as info:
        read_requests(path, fmt)
    assert isinstance(info.value, UsageError)
    if fmt != "nope":
        assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("span_s", "scale", "expected"),
    [
        (100.0, 1.0, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]),  # tiled: period 20 + 20/2 = 30
        (60.0, 2.0, [0, 20, 40]),  # stretched x2: 0, 20, 40 then the next copy at 60
        (15.0, 1.0, [0, 10]),
    ],
)
def test_tiling_and_stretching(span_s: float, scale: float, expected: list[float]) -> None:
    from daemon.replay.traces import RequestTrace

    rows = [(0.0, 1, 1, 1), (10.0, 2, 2, 1), (20.0, 3, 3, 1)]
    tiled = tile(RequestTrace.from_rows("t", rows), span_s, scale)
    assert tiled.offset_s.tolist() == pytest.approx(expected)


def test_arrivals_at_one_instant_are_replayed_once() -> None:
    """One job was repeated every second (86,400 jobs a day), three submitted at once every
    millisecond (refused: 'raise --time-scale or shorten --days')."""
    from daemon.replay.traces import RequestTrace

    for rows in ([(5.0, 1, 1, 64)], [(5.0, 1, 1, 64)] * 3):
        tiled = tile(RequestTrace.from_rows("t", rows), 86_400.0, 1.0)
        assert tiled.offset_s.tolist() == [0.0] * len(rows)
        assert tiled.requests.tolist() == [64] * len(rows)


def test_a_job_files_jobs_are_replayed_once_each_not_tiled(
    tmp_path: Path, cluster_file: Path
) -> None:
    """A carbond job file of three jobs over 20 minutes replayed as a request trace: repeated
    back to back, 144 jobs over `--days 1`. Its jobs are now taken as they are, moved to
    --start (stretched by --time-scale); a request trace is still tiled."""
    path = tmp_path / "jobs.jsonl"
    line = '{{"arrival": "2023-06-05T00:{:02d}:00Z", "input_tokens": 500, "output_tokens": 100}}\n'
    path.write_text("".join(line.format(m) for m in (0, 10, 20)), encoding="utf-8")
    cluster = load_cluster(cluster_file)
    regions = [(r.name, r.gpu_count) for r in cluster.regions]
    options = WorkloadOptions(START, 86400.0, model="llama-1b")
    trace = read_requests(path, "carbond")
    for scale in (1.0, 2.0):
        jobs = build_jobs([trace], replace(options, time_scale=scale), regions,
                          cluster.gpu_types())  # fmt: skip
        assert [j.job_id for j in jobs] == ["jobs-000000", "jobs-000001", "jobs-000002"]
        assert [j.submitted_at for j in jobs] == [
            START + timedelta(minutes=m * scale) for m in (0, 10, 20)
        ]
    requests = replace(trace, prebatched=False)
    assert len(tile(requests, 86400.0, 1.0)) == 3 * 48  # a period of 30 minutes


def test_a_time_scale_that_would_tile_past_memory_is_refused() -> None:
    """`--time-scale 1e-12` used to ask NumPy for 623 GiB (a MemoryError traceback)."""
    from daemon.replay.traces import RequestTrace

    rows = [(0.0, 1, 1, 1), (10.0, 2, 2, 1), (20.0, 3, 3, 1)]
    with pytest.raises(ReplayInputError, match=r"--time-scale 1e-12: .* requests \(at most"):
        tile(RequestTrace.from_rows("t", rows), 7 * 86_400.0, 1e-12)
    assert len(tile(RequestTrace.from_rows("t", rows), 7 * 86_400.0, 1.0)) == 3 * 20_160


def test_arrivals_past_the_span_are_counted_in_the_notes(
    tmp_path: Path, cluster_file: Path
) -> None:
    """A job file whose first line's year was mistyped (2022 for 2023) replayed that one job:
    the other twenty arrived a year after it, past `--days 1`, and were dropped without a word.
    A trace tiled over the span (its last copy cut short) is not worth a note."""
    path = tmp_path / "jobs.jsonl"
    line = '{{"arrival": "{}", "input_tokens": 500, "output_tokens": 100, "requests": 64}}\n'
    stamps = ["2022-06-05T00:10:00Z", *(f"2023-06-05T{h:02d}:10:00Z" for h in range(20))]
    path.write_text("".join(line.format(stamp) for stamp in stamps), encoding="utf-8")
    cluster = load_cluster(cluster_file)
    regions = [(r.name, r.gpu_count) for r in cluster.regions]
    options = WorkloadOptions(START, 86400.0, model="llama-1b")
    notes: list[str] = []
    jobs = build_jobs([read_requests(path, "carbond")], options, regions, cluster.gpu_types(),
                      notes)  # fmt: skip
    assert len(jobs) == 1
    assert notes == [f"{path}: 20 of 21 jobs arrive past the replayed span (--days 1 from its "
                     "first arrival; the last 365.8 days after it): left out"]  # fmt: skip
    tiled = write_azure(tmp_path / "t.csv", [(i * 10.0, 100, 10) for i in range(10)])
    notes.clear()
    build_jobs([read_requests(tiled, "azure")], options, regions, cluster.gpu_types(), notes)
    assert notes == []
    stretched = replace(options, span_s=50.0, time_scale=2.0)
    build_jobs([read_requests(tiled, "azure")], stretched, regions, cluster.gpu_types(), notes)
    assert notes == [f"{tiled}: 7 of 10 requests arrive past the replayed span (--days 0.000578704 "
                     "from its first arrival at --time-scale 2; the last 0.002083 days after it): "
                     "left out"]  # fmt: skip


def test_only_the_requests_within_the_span_count_against_the_tiling_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trace longer than the span was counted whole against the limit: a week of 25 million
    requests was refused for a one-day replay, with 'shorten --days' as the advice."""
    from daemon.replay import workload
    from daemon.replay.traces import RequestTrace

    monkeypatch.setattr(workload, "MAX_TILED_REQUESTS", 20)
    trace = RequestTrace.from_rows("t", [(float(s), 1, 1, 1) for s in range(30)])
    assert len(tile(trace, 10.0, 1.0)) == 10  # 10 of the 30 within the span
    with pytest.raises(ReplayInputError, match=r"would hold 100 requests \(at most 20\)"):
        tile(trace, 100.0, 1.0)  # three whole copies of 30 and 10 of a fourth


def test_batching_slack_and_homes(tmp_path: Path, cluster_file: Path) -> None:
    path = write_azure(tmp_path / "t.csv", [(i * 10.0, 100 + i, 10) for i in range(10)])
    cluster = load_cluster(cluster_file)
    options = WorkloadOptions(START, 100.0, requests_per_job=4, slack_s=3600, model="llama-1b")
    regions = [(r.name, r.gpu_count) for r in cluster.regions]
    jobs = build_jobs([read_requests(path, "azure")], options, regions, cluster.gpu_types())
    assert [j.workload.request_count for j in jobs] == [4, 4, 2]
    assert [j.workload.input_tokens for j in jobs] == [102, 106, 108]  # rounded means
    assert [j.submitted_at for j in jobs] == [START + timedelta(seconds=s) for s in (30, 70, 90)]
    for spec in jobs:
        assert spec.deadline is not None
        assert spec.deadline - spec.submitted_at > timedelta(hours=1)
    assert [j.regions[0] for j in jobs] == ["quebec", "california", "quebec"]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("requests_per_job", 2**64, r"--requests-per-job is out of range \(1 to 1,000,000,000\)"),
        ("time_scale", float("inf"), r"--time-scale is out of range \(> 0, at most 1e\+09\)"),
        ("time_scale", 1e308, r"--time-scale is out of range \(> 0, at most 1e\+09\)"),
        ("batch_size", 2**70, r"--batch-size is out of range \(1 to 1,000,000\)"),
        ("slack_s", 1e24, "--slack 1.15741e.19 days: job t-000000's deadline would be past year"),
    ],
)
def test_workload_options_past_what_a_replay_holds_are_named(
    tmp_path: Path, cluster_file: Path, option: str, value: float, message: str
) -> None:
    """`--requests-per-job 18446744073709551616` was a TypeError traceback, `--slack
    99999999999999d` an OverflowError one, `--time-scale inf` (and 1e308, finite) a NumPy
    warning and a replay of nonsense offsets."""
    from dataclasses import replace

    path = write_azure(tmp_path / "t.csv", [(i * 10.0, 100, 10) for i in range(4)])
    cluster = load_cluster(cluster_file)
    options = replace(WorkloadOptions(START, 100.0, model="llama-1b"), **{option: value})
    regions = [(r.name, r.gpu_count) for r in cluster.regions]
    with pytest.raises(ReplayInputError, match=message):
        build_jobs([read_requests(path, "azure")], options, regions, cluster.gpu_types())


def test_overlaid_traces_get_distinct_job_ids(tmp_path: Path, cluster_file: Path) -> None:
    """Mooncake's conversation_trace and synthetic_trace (the same last ``_`` part) and a
    trace overlaid on itself: every job id is unique (the ledger refused the second
    ``trace-000000``: "UNIQUE constraint failed: jobs.job_id"); a unique part stays short."""
    rows = [(i * 10.0, 100, 10) for i in range(4)]
    (tmp_path / "a").mkdir()
    paths = [
        write_azure(tmp_path / "conversation_trace.csv", rows),
        write_azure(tmp_path / "synthetic_trace.csv", rows),
        write_azure(tmp_path / "Trace_code.csv", rows),
        write_azure(tmp_path / "a" / "Trace_code.csv", rows),
    ]
    paths.append(paths[0])
    cluster = load_cluster(cluster_file)
    options = WorkloadOptions(START, 40.0, requests_per_job=2, model="llama-1b")
    regions = [(r.name, r.gpu_count) for r in cluster.regions]
    traces = [read_requests(path, "azure") for path in paths]
    jobs = build_jobs(traces, options, regions, cluster.gpu_types())
    ids = [j.job_id for j in jobs]
    assert len(ids) == len(set(ids)) == 10
    assert {i.rsplit("-", 1)[0] for i in ids} == {
        "conversation_trace", "synthetic_trace", "Trace_code", "Trace_code2",
        "conversation_trace2",
    }  # fmt: skip
    assert build_jobs(traces[2:3], options, regions, cluster.gpu_types())[0].job_id == "code-000000"
    packed = tmp_path / "Trace_conv.csv.gz"
    packed.write_bytes(gzip.compress(paths[0].read_bytes()))
    jobs = build_jobs([read_requests(packed, "azure")], options, regions, cluster.gpu_types())
    assert jobs[0].job_id == "conv-000000"  # was conv.csv-000000


def test_deadline_allows_twice_the_planners_estimate_on_the_slowest_gpu(
    tmp_path: Path, cluster_file: Path
) -> None:
    """Slack 0 leaves room for 2x the estimate the planner and executor use (the calibrated
    serving model for vLLM), not the plain roofline, on the slowest fitting GPU + two ticks."""
    path = write_azure(tmp_path / "t.csv", [(i * 10.0, 500, 200) for i in range(8)])
    cluster = load_cluster(cluster_file)
    options = WorkloadOptions(START, 100.0, requests_per_job=8, model="llama-1b", tick_s=60.0)
    regions = [(r.name, r.gpu_count) for r in cluster.regions]
    job = build_jobs([read_requests(path, "azure")], options, regions, cluster.gpu_types())[0]
    assert job.workload.request_count == 8
    planned = [
        estimate_on(job, Device(f"d-{gpu.name}", "r", "Z", gpu)).duration_s
        for gpu in cluster.gpu_types()
    ]
    roofline = [
        estimate(job.model, gpu, get_runtime(job.runtime), job.workload).duration_s
        for gpu in cluster.gpu_types()
    ]
    assert max(planned) != pytest.approx(max(roofline), rel=0.05)  # the two models differ here
    assert job.deadline is not None
    allowance_s = (job.deadline - job.submitted_at).total_seconds()
    assert allowance_s == pytest.approx(2 * max(planned) + 2 * 60.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[regions]]\nname = 'a'\nzone = 'X'\ngpus = [{ type = 'Z9', count = 1 }]\n", "Z9"),
        ("[[regions]]\nname = 'a'\nzone = 'X'\ngpus = []\n", r"c\.toml:4: regions\.a\.gpus"),
        ("[[regions]]\nname = 'a b'\nzone = 'X'\ngpus = ['T4']\n", r"c\.toml:2: regions\.0\.name"),
        ("regions = [\n", "not valid TOML"),
        ("[[regions]]\nname = 'a'\nzone = 'X'\npue = 0.5\ngpus = ['T4']\n", ":4: regions.a.pue"),
        (
            "[[regions]]\nname = 'a'\nzone = 'X'\ngpus = ['T4']\n[[regions]]\nzone = 'Y'\n"
            "name = 'a'\ngpus = ['T4']\n",
            r"c\.toml:7: regions\.1\.name: duplicate region name 'a' \(also regions\.0\)",
        ),
        (
            "[[regions]]\nname = 'a'\nzone = 'X'\ngpus = 'discover'\n",
            r"c\.toml:4: regions\.a\.gpus: region 'a' discovers",
        ),
        (  # was "regions: Input should be a valid tuple"
            "[regions]\nname = 'a'\nzone = 'X'\ngpus = ['T4']\n",
            r"c\.toml:1: regions: a list of tables: write \[\[regions\]\] \(double brackets\)",
        ),
    ],
)
def test_bad_cluster_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReplayInputError, match=message):
        load_cluster(path)


def test_a_cluster_file_that_is_not_text_is_named(tmp_path: Path) -> None:
    """`--cluster intensity.csv.gz` was a UnicodeDecodeError traceback."""
    path = tmp_path / "c.toml.gz"
    path.write_bytes(gzip.compress(b"[[regions]]\n"))
    with pytest.raises(ReplayInputError, match=f"{path}: not a cluster file"):
        load_cluster(path)


def test_cluster_devices(cluster_file: Path) -> None:
    cluster = load_cluster(cluster_file)
    ids = [d.device_id for d in cluster.devices()]
    assert ids == ["quebec/0", "quebec/1", "california/0"]
    assert cluster.devices()[2].pue == 1.1
    assert cluster.zones() == ("CA-QC", "US-CAL-CISO")


def test_a_custom_catalog_gives_the_gpus_and_refuses_one_it_lacks(cluster_file: Path) -> None:
    """The cluster's GPU names are looked up in the catalog handed in, not the built-in one
    the region model checks them against: its specs are the devices', and a name it lacks
    is refused at its region's gpus line."""
    catalog = DEFAULT_GPU_CATALOG.with_overrides({"T4": {"tdp_w": 55.0}})
    cluster = load_cluster(cluster_file, catalog)
    assert [d.gpu.tdp_w for d in cluster.devices()] == [
        55.0,
        55.0,
        DEFAULT_GPU_CATALOG.get("RTX6000-Ada").tdp_w,
    ]
    without_ada = GpuCatalog(spec for spec in catalog if spec.name != "RTX6000-Ada")
    with pytest.raises(ReplayInputError) as info:
        load_cluster(cluster_file, without_ada)
    assert str(info.value).startswith(
        f"{cluster_file}:11: regions.california.gpus: unknown GPU 'RTX6000-Ada' (known: "
    )


def test_forecasts_use_only_the_past(intensity_files: list[Path]) -> None:
    signals = ReplaySignals(
        [read_intensity(p) for p in intensity_files], ["US-CAL-CISO"], "seasonal-24h"
    )
    signals.covers(START, START + timedelta(days=1))
    actual = signals.actual("US-CAL-CISO")
    now = START + timedelta(hours=9, minutes=30)
    fc = signals.forecast("US-CAL-CISO", now, 6 * 3600)
    assert fc.start == START + timedelta(hours=10)  # the first point not yet known
    assert fc.values_g_per_kwh.tolist() == pytest.approx([100.0] * 6, abs=1.0)
    assert fc.upper_g_per_kwh is not None
    assert np.all(fc.upper_g_per_kwh >= fc.values_g_per_kwh)
    # Changing the future must not change the forecast.
    future = actual.values_g_per_kwh.copy()
    future[8 * 24 + 10 :] = 999.0
    other = ReplaySignals([{"US-CAL-CISO": actual.replace(values_g_per_kwh=future)}],
                          ["US-CAL-CISO"], "seasonal-24h")  # fmt: skip
    assert np.array_equal(other.forecast("US-CAL-CISO", now, 6 * 3600).values_g_per_kwh,
                          fc.values_g_per_kwh)  # fmt: skip


def test_too_short_intensity_is_named(intensity_files: list[Path]) -> None:
    signals = ReplaySignals([read_intensity(p) for p in intensity_files], ["CA-QC"])
    with pytest.raises(ReplayInputError, match="CA-QC"):
        signals.covers(START, START + timedelta(days=30))


def test_intensity_must_cover_the_jobs_last_deadline(
    trace: Path, cluster_file: Path, intensity_files: list[Path]
) -> None:
    """The files end 3 days after START; a replay of 2.5 days with 12 h of slack holds jobs
    past that: it ran, each run there accounted at the files' last hour, and planning logged
    'intensity_refresh_failed' every hour of every zone. The same span with no slack runs."""
    from daemon.replay.inputs import load_setup
    from tests.daemon.replay.conftest import replay_inputs

    inputs = replay_inputs(trace, cluster_file, intensity_files, days=2.5)
    setup = load_setup(inputs, 0.0)
    assert max(j.deadline for j in setup.jobs if j.deadline) < START + timedelta(days=3)
    message = (r"intensity for CA-QC covers 2023-05-28 00:00 to 2023-06-08 00:00; the replay "
               r"needs a week before 2023-06-05 and up to 2023-06-08 \d\d:\d\d \(the jobs' "
               r"last deadline; the span ends 2023-06-07 12:00\)")  # fmt: skip
    with pytest.raises(ReplayInputError, match=message):
        load_setup(inputs, 12 * 3600.0)


def test_a_zone_in_two_files_is_joined(
    tmp_path: Path, trace: Path, cluster_file: Path, intensity_files: list[Path]
) -> None:
    """A zone's second file (the next year's) replaced its first, silently: a replay across
    the new year with both yearly files failed, 'intensity for CA-QC covers ...'."""
    from dataclasses import replace

    from daemon.replay.inputs import load_setup
    from tests.daemon.replay.conftest import replay_inputs

    begin = START - timedelta(days=8)
    early = write_intensity(tmp_path / "qc-a.csv", "CA-QC", [10.0] * 48, begin)
    late = write_intensity(tmp_path / "qc-b.csv", "ca-qc", [20.0, 30.0] + [40.0] * 258,
                           begin + timedelta(hours=47))  # fmt: skip
    inputs = replay_inputs(trace, cluster_file, [early, late, intensity_files[1]])
    setup = load_setup(replace(inputs, days=0.5), 0.0)
    series = setup.signals.actual("CA-QC")
    assert series.start == begin and len(series) == 47 + 260
    assert series.values_g_per_kwh[[0, 46, 47, 48, -1]].tolist() == [10.0, 10.0, 20.0, 30.0, 40.0]
    gap = write_intensity(tmp_path / "qc-c.csv", "CA-QC", [40.0] * 200, begin + timedelta(hours=50))
    notes: list[str] = []
    joined = join_zones([read_intensity(early), read_intensity(gap)], notes)["CA-QC"]
    assert joined.values_g_per_kwh[[47, 48, 49, 50]].tolist() == [10.0, 20.0, 30.0, 40.0]
    assert joined.is_estimated[[47, 48, 49, 50]].tolist() == [False, True, True, False]
    assert notes == ["intensity for CA-QC: 2 points between qc-a.csv and qc-c.csv interpolated, "
                     "flagged estimated"]  # fmt: skip
    minutes = tmp_path / "qc-15.csv"
    minutes.write_text("datetime,zone,carbon_intensity_g_per_kwh\n" + "".join(
        f"{START + timedelta(minutes=15 * k):%Y-%m-%dT%H:%M}Z,CA-QC,5\n" for k in range(8)
    ), encoding="utf-8")  # fmt: skip
    with pytest.raises(ReplayInputError, match=r"CA-QC in qc-a\.csv and qc-15\.csv: cannot merge"):
        join_zones([read_intensity(early), read_intensity(minutes)])


def test_a_zones_files_more_than_a_day_apart_are_refused(tmp_path: Path) -> None:
    """A zone's 2023 and 2025 files (2024's forgotten) were joined through a straight line
    over the missing year, named only in a note; a day apart is still interpolated."""
    begin = START - timedelta(days=8)
    early = write_intensity(tmp_path / "qc-a.csv", "CA-QC", [10.0] * 48, begin)
    day = write_intensity(tmp_path / "qc-d.csv", "CA-QC", [40.0] * 48, begin + timedelta(hours=72))
    notes: list[str] = []
    joined = join_zones([read_intensity(early), read_intensity(day)], notes)["CA-QC"]
    assert len(joined) == 120 and notes[0].startswith("intensity for CA-QC: 24 points between")
    year = write_intensity(tmp_path / "qc-y.csv", "CA-QC", [40.0] * 48, begin + timedelta(days=367))
    message = ("intensity for CA-QC: qc-a.csv ends 2023-05-30 00:00 and qc-y.csv starts "
               "2024-05-29 00:00, 365 days later (at most 1 is interpolated): give the file "
               "between them, or only those the replay needs")  # fmt: skip
    for order in ((early, year), (year, early)):
        with pytest.raises(ReplayInputError, match=re.escape(message)):
            join_zones([read_intensity(path) for path in order])
    # the year between them given last: joined whole, nothing interpolated
    between = write_intensity(tmp_path / "qc-b.csv", "CA-QC", [20.0] * 365 * 24,
                              begin + timedelta(hours=48))  # fmt: skip
    notes.clear()
    found = [read_intensity(path) for path in (early, year, between)]
    joined = join_zones(found, notes)["CA-QC"]
    assert len(joined) == 48 + 365 * 24 + 48 and not joined.is_estimated.any() and notes == []


def test_a_month_missing_inside_one_file_is_refused_where_the_replay_needs_it(
    tmp_path: Path, trace: Path, cluster_file: Path, intensity_files: list[Path]
) -> None:
    """A file with days of rows missing was replayed through a straight line over them, said
    only in a note; a gap longer than a day within the week before the start to the last
    deadline is now refused, naming the file, zone and days. One elsewhere, one of a day, or
    one a later file covers, is interpolated as before, and the file's own estimated rows are
    no gap."""
    begin = START - timedelta(days=8)
    hours = 11 * 24
    values = [30.0] * hours
    qc = tmp_path / "qc-gap.csv"

    def write(missing: range, estimated: range = range(0)) -> Path:
        lines = ["Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (LCA),Data Estimated"]
        lines += [f"{begin + timedelta(hours=h):%Y-%m-%d %H:%M:%S},CA-QC,{values[h]},"
                  f"{h in estimated}" for h in range(hours) if h not in missing]  # fmt: skip
        qc.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return qc

    inputs = replace(replay_inputs(trace, cluster_file, [qc, intensity_files[1]]), days=0.5)
    write(range(3 * 24, 5 * 24))  # two days missing, four days before the start
    message = (f"{qc}: CA-QC has no intensity from 2023-05-31 00:00 to 2023-06-02 00:00 (2 days), "
               "within what the replay needs (2023-05-29 00:00 to 2023-06-05 ")  # fmt: skip
    with pytest.raises(ReplayInputError, match=re.escape(message)):
        load_setup(inputs, 4 * 3600.0)
    # covered by a later file: its points are replayed, not the straight line
    cover = write_intensity(tmp_path / "qc-all.csv", "CA-QC", [20.0] * hours, begin)
    setup = load_setup(replace(inputs, intensity=(qc, cover, intensity_files[1])), 4 * 3600.0)
    assert setup.signals.actual("CA-QC").values_g_per_kwh[3 * 24] == 20.0
    for missing, estimated in (
        (range(9 * 24, 10 * 24 + 12), range(0)),  # 36 h after the last deadline
        (range(3 * 24, 4 * 24), range(0)),  # one day: interpolated, as between two files
        (range(0), range(3 * 24, 6 * 24)),  # three days the file itself calls estimated
    ):
        write(missing, estimated)
        setup = load_setup(inputs, 4 * 3600.0)
        assert setup.signals.actual("CA-QC").missing_count() == 0
        filled = [note for note in setup.notes if "interpolated" in note]
        assert filled == ([f"{qc}: CA-QC: filled: {len(missing)} points interpolated, flagged "
                           "estimated"] if missing else [])  # fmt: skip


def test_missing_zone_is_named(intensity_files: list[Path]) -> None:
    with pytest.raises(ReplayInputError, match="US-NW-PACE"):
        ReplaySignals([read_intensity(p) for p in intensity_files], ["US-NW-PACE"])


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("path", "fmt", "requests", "span_s"),
    [
        ("llm_traces/azure_2023/AzureLLMInferenceTrace_conv.csv", "azure", 19_366, 3501.7),
        ("llm_traces/azure_2023/AzureLLMInferenceTrace_code.csv", "azure", 8_819, 3435.9),
        ("llm_traces/mooncake_fast25/conversation_trace.jsonl", "mooncake", 12_031, 3537.0),
    ],
)
def test_real_traces(shared_data: Path, path: str, fmt: str, requests: int, span_s: float) -> None:
    trace = read_requests(shared_data / path, fmt)
    assert len(trace) == requests
    assert trace.span_s == pytest.approx(span_s, abs=0.1)
    assert trace.input_tokens.min() >= 0 and trace.output_tokens.max() > 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("days", float("nan"), "--days"), ("days", 0.0, "--days"), ("tick_s", float("nan"), "--tick"),
     ("tick_s", 10**15, "--tick"),
     ("truth_factor", float("nan"), "--truth-factor"),
     ("duration_noise", float("nan"), "--duration-noise"),
     # a run's simulated length past what a clock holds (an OverflowError traceback)
     ("truth_factor", 1e300, "--truth-factor"), ("duration_noise", 1e9, "--duration-noise"),
     # a replay whose dates leave datetime's years (an OverflowError traceback)
     ("days", 1e308, "--days 1e"), ("start", datetime(1, 1, 1, tzinfo=UTC), "--start 0001-01-01"),
     ("start", datetime(9999, 12, 29, tzinfo=UTC), "within years 1 to 9999")],
)  # fmt: skip
def test_a_nan_or_empty_span_is_refused_before_any_input_is_read(
    tmp_path: Path, field: str, value: float, message: str
) -> None:
    """`carbond replay --days nan` used to fail with a ValueError traceback."""
    from dataclasses import replace

    from daemon.replay.inputs import load_setup
    from tests.daemon.replay.conftest import replay_inputs

    missing = tmp_path / "missing"
    inputs = replace(replay_inputs(missing, missing, [missing]), **{field: value})
    with pytest.raises(ReplayInputError, match=message):
        load_setup(inputs, 0.0)
