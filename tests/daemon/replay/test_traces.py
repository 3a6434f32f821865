"""Replay inputs: request traces (Azure, Mooncake, carbond job files) read in arrival order
into columns, their bad rows skipped and named."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from daemon.errors import UsageError
from daemon.replay.errors import ReplayInputError
from daemon.replay.signals import read_intensity
from daemon.replay.traces import read_requests
from tests.daemon.replay.conftest import START, write_azure, write_intensity


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
