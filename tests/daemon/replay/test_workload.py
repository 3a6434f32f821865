"""Replay inputs: request traces tiled or stretched over the span and batched into jobs with
their deadlines, homes and ids; options past what a replay holds named."""

from __future__ import annotations

import gzip
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.replay.cluster import load_cluster
from daemon.replay.errors import ReplayInputError
from daemon.replay.traces import read_requests
from daemon.replay.workload import WorkloadOptions, build_jobs, tile
from policies import Device
from policies.candidates import estimate_on
from policies.footprint import estimate, get_runtime
from tests.daemon.replay.conftest import START, write_azure


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
