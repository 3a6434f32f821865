"""``carbond replay --jobs-format ledger``: an operator replays their own ledger's jobs."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.ledger import Ledger
from daemon.queue import JobRequest, parse_line
from daemon.replay.driver import replay_policy
from daemon.replay.errors import ReplayInputError
from daemon.replay.inputs import ReplayInputs, load_setup
from daemon.replay.ledger_jobs import jobs_from_ledger
from tests.daemon.replay.conftest import START

LIVE = START + timedelta(days=200)  # when the operator's jobs really ran


def _request(line: dict[str, object], at_s: float) -> JobRequest:
    line = {"command": ["python", "serve.py"], **line}
    parsed = parse_line(json.dumps(line), LIVE + timedelta(seconds=at_s))
    assert isinstance(parsed, JobRequest)
    return parsed


def _ledger(path: Path) -> Path:
    jobs = [
        (0.0, {"id": "a", "model": "llama-1b", "input_tokens": 500, "output_tokens": 100,
               "requests": 64, "deadline": "+6h"}),
        (600.0, {"id": "b", "model": "llama-3b", "input_tokens": 800, "output_tokens": 200,
                 "requests": 32, "regions": ["california"]}),
        (2 * 86400.0, {"id": "late", "model": "llama-1b", "input_tokens": 10,
                       "output_tokens": 10}),
    ]  # fmt: skip
    with Ledger.open(path) as ledger:
        for at_s, line in jobs:
            ledger.add_job(
                _request(line, at_s), 1000, 1000, "queue.jsonl", LIVE + timedelta(seconds=at_s)
            )
    return path


def _ledger_with_a_job_for_paris(path: Path) -> Path:
    """A ledger at ``path`` of four jobs any GPU can run (j0..j3) and one, "x", only for the
    region "paris", which the tests' cluster lacks; 10 min apart."""
    job = {"model": "llama-1b", "input_tokens": 500, "output_tokens": 100, "deadline": "+6h"}
    jobs = [{**job, "id": f"j{k}"} for k in range(4)] + [{**job, "id": "x", "regions": ["paris"]}]
    with Ledger.open(path) as ledger:
        for k, line in enumerate(jobs):
            at = LIVE + timedelta(seconds=600 * k)
            ledger.add_job(_request(line, 600 * k), 1000, 1000, "queue.jsonl", at)
    return path


def test_ledger_jobs_keep_their_own_model_offsets_and_deadlines(tmp_path: Path) -> None:
    path = _ledger(tmp_path / "ledger.db")
    notes: list[str] = []
    jobs = jobs_from_ledger(path, START, 86400.0, notes)
    assert [j.job_id for j in jobs] == ["a", "b"]  # "late" arrives after the span, and says so
    assert notes == [f"{path}: 1 of 3 jobs arrive past the replayed span (--days 1 from its first "
                     "arrival; the last 2 days after it): left out"]  # fmt: skip
    a, b = jobs
    assert a.submitted_at == START and b.submitted_at == START + timedelta(seconds=600)
    assert a.model.name != b.model.name
    assert a.workload.requests == 64 and b.workload.input_tokens == 800
    assert a.deadline == START + timedelta(hours=6)
    assert b.deadline is None and b.regions == ("california",)


def test_a_ledger_replays_through_the_daemon(
    tmp_path: Path, cluster_file: Path, intensity_files: list[Path]
) -> None:
    path = _ledger(tmp_path / "ledger.db")
    inputs = ReplayInputs((path,), "ledger", cluster_file, tuple(intensity_files), START, 1.0,
                          64, 1.0, "llama-1b", "vllm", 8, 300, "seasonal-24h")  # fmt: skip
    setup = load_setup(inputs, 0.0)
    run = replay_policy(setup, "carbon-window")
    assert sorted(o.job_id for o in run.outcomes) == ["a", "b"]
    assert run.rejected == 0 and run.unfinished == 0
    b = next(o for o in run.outcomes if o.job_id == "b")
    assert b.region == "california"  # the job's own allowed regions are kept


def test_the_cli_replays_a_ledger(
    tmp_path: Path,
    cluster_file: Path,
    intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _ledger(tmp_path / "ledger.db")
    argv = ["replay", "--jobs", str(path), "--jobs-format", "ledger",
            "--cluster", str(cluster_file), "--start", START.date().isoformat(), "--days", "1",
            "--policy", "run-now,carbon-window", "--json"]  # fmt: skip
    for zone_file in intensity_files:
        argv += ["--intensity", str(zone_file)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out
    assert f"carbond: note: {path}: 1 of 3 jobs arrive past the replayed span" in captured.err
    # --slack does not apply to a ledger's jobs: no slack in the rows (it read the default 4 h),
    # the files in DIR itself, and a list of slacks (the same replay under other labels) refused
    assert {row["slack_s"] for row in out} == {None}
    assert (tmp_path / "out" / "jobs.csv").exists()
    assert main([*argv, "--slack", "0,4h"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "own deadlines" in err


def test_jobs_no_gpu_of_the_cluster_can_run_are_named_in_a_note(
    tmp_path: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A ledger job whose allowed regions or GPU types the cluster lacks (the operator's names
    are not the cluster file's), or whose model fits none of its GPUs, showed only as one more
    "rejected"; a note per reason now names the count, the jobs and why."""
    path = tmp_path / "ledger.db"
    job = {"model": "llama-1b", "input_tokens": 500, "output_tokens": 100}
    jobs = [
        {**job, "id": "a"},
        {**job, "id": "b", "regions": ["paris", "tokyo"]},
        {**job, "id": "c", "regions": ["paris", "quebec"]},
        {**job, "id": "d", "gpu_types": ["A100"]},
        {**job, "id": "e", "regions": ["paris", "tokyo"]},
    ]
    with Ledger.open(path) as ledger:
        for k, line in enumerate(jobs):
            at = LIVE + timedelta(seconds=60 * k)
            ledger.add_job(_request(line, 60 * k), 1000, 1000, "queue.jsonl", at)
    argv = ["replay", "--jobs", str(path), "--jobs-format", "ledger",
            "--cluster", str(cluster_file), "--start", START.date().isoformat(), "--days", "1",
            "--policy", "run-now", "--json"]  # fmt: skip
    for zone_file in intensity_files:
        argv += ["--intensity", str(zone_file)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["rejected"] == 3
    assert captured.err.splitlines() == [
        f"carbond: note: {path}: 2 of 5 jobs (b, e): no available GPU in region(s) paris, tokyo "
        "(GPUs are in california, quebec): every policy rejects them",
        f"carbond: note: {path}: 1 of 5 jobs (d): no available A100-40GB GPU (there are "
        "RTX6000-Ada, T4): every policy rejects it",  # one job: "it" (was "them")
    ]


def test_tune_does_not_hold_a_job_no_gpu_can_run_against_every_setting(
    tmp_path: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A ledger job whose region the cluster lacks is rejected by every setting, run-now too;
    tune marked each one "no: 1 rejected" and its front was empty, nothing to choose from.
    Such jobs no longer exclude a setting (a rejection beyond them still does)."""
    path = _ledger_with_a_job_for_paris(tmp_path / "ledger.db")
    argv = ["tune", "--jobs", str(path), "--jobs-format", "ledger",
            "--cluster", str(cluster_file), "--start", START.date().isoformat(), "--days", "1",
            "--tick", "300", "--forecaster", "seasonal-24h", "--grid", "min_saving=0,0.5",
            "--json"]  # fmt: skip
    for zone_file in intensity_files:
        argv += ["--intensity", str(zone_file)]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["rejected"], r["deadline_misses"]) for r in rows] == [(1, 0), (1, 0)]
    assert [r["excluded"] for r in rows] == [None, None] and any(r["pareto"] for r in rows)


def test_a_job_no_gpu_can_run_leaves_the_gap_to_the_bound(
    tmp_path: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The bound leaves out a job no GPU can run, and every policy rejects it; each policy's
    gap_to_bound was None all the same ("-" in the table), as for a policy that rejected a job
    the bound placed, and the note said "1 jobs cannot meet their deadline even alone"; its
    temporal-only potential (run-now's placements, shifted in time) was None as well."""
    path = _ledger_with_a_job_for_paris(tmp_path / "ledger.db")
    argv = ["replay", "--jobs", str(path), "--jobs-format", "ledger",
            "--cluster", str(cluster_file), "--start", START.date().isoformat(), "--days", "1",
            "--tick", "300", "--forecaster", "seasonal-24h", "--policy", "run-now,carbon-window",
            "--bound", "--json"]  # fmt: skip
    for zone_file in intensity_files:
        argv += ["--intensity", str(zone_file)]
    assert main(argv) == 0
    rows = {r["policy"]: r for r in json.loads(capsys.readouterr().out)}
    bound = rows.pop("lp-bound")
    assert (bound["jobs"], bound["rejected"]) == (4, 1)
    assert bound["note"].endswith("; 1 job cannot meet its deadline even alone (or fit no GPU): "
                                  "left out")  # fmt: skip
    # and the temporal-only potential, over the jobs run-now ran (it was None too)
    assert bound["temporal_only_potential"] is not None
    assert 0 <= bound["temporal_only_potential"] < 1
    for name, row in rows.items():
        assert (row["jobs"], row["rejected"], row["deadline_misses"]) == (4, 1, 0), name
        assert row["gap_to_bound"] == pytest.approx(row["total_g"] / bound["total_g"] - 1), name
        assert row["gap_to_bound"] >= -1e-9, name


@pytest.mark.parametrize(
    ("requests", "count", "message"),
    [  # one job running past the files' end; three, the later two waiting when they end
        (20_000, 1, "run-now: job j0 runs in california until 2023-06-10 14:40 (it has no "
                    "deadline), past the intensity of US-CAL-CISO (to 2023-06-08 00:00)"),
        (3_000, 3, "run-now: job j1 and 1 more still waiting at 2023-06-08 00:00 (it has no "
                   "deadline), when the intensity of CA-QC ends"),
    ],
)  # fmt: skip
def test_jobs_without_a_deadline_past_the_intensity_are_refused_naming_the_job(
    tmp_path: Path, cluster_file: Path, intensity_files: list[Path],
    requests: int, count: int, message: str,
) -> None:  # fmt: skip
    """The files need only reach the last deadline, and a ledger's job without one could run,
    or wait, past their end: its hours there were accounted at the files' last hour, without a
    word, and jobs that waited started on no forecast or failed two days later as "still
    queued". Either is now refused, naming the job (the files end 3 days after START)."""
    path = tmp_path / "ledger.db"
    line = {"model": "llama-3b", "input_tokens": 800, "output_tokens": 400,
            "requests": requests, "regions": ["california"]}  # fmt: skip
    with Ledger.open(path) as ledger:
        for k in range(count):
            at = LIVE + timedelta(seconds=60 * k)
            ledger.add_job(_request({**line, "id": f"j{k}"}, 60 * k), 1000, 1000, "q.jsonl", at)
    start = START + timedelta(days=2, hours=20)
    inputs = ReplayInputs((path,), "ledger", cluster_file, tuple(intensity_files), start, 0.1,
                          64, 1.0, "llama-1b", "vllm", 8, 300, "seasonal-24h")  # fmt: skip
    setup = load_setup(inputs, 0.0)
    with pytest.raises(ReplayInputError) as refused:
        replay_policy(setup, "run-now")
    assert str(refused.value) == (
        f"{message}: give --intensity files that reach further, or replay a shorter span"
    )


def test_an_empty_or_missing_ledger_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReplayInputError, match="no ledger"):
        jobs_from_ledger(tmp_path / "missing.db", START, 86400.0)
    Ledger.open(tmp_path / "empty.db").close()
    with pytest.raises(ReplayInputError, match="holds no job"):
        jobs_from_ledger(tmp_path / "empty.db", START, 86400.0)


def test_two_ledgers_with_the_same_job_ids_overlay(
    tmp_path: Path, cluster_file: Path, intensity_files: list[Path]
) -> None:
    """Two ledgers holding jobs of the same ids (the two ledgers of ``carbond demo``): the
    second's are renamed ``<id>.2`` (the replay's ledger refused the second "a": "UNIQUE
    constraint failed: jobs.job_id")."""
    first = _ledger(tmp_path / "one.db")
    second = _ledger(tmp_path / "two.db")
    inputs = ReplayInputs((first, second), "ledger", cluster_file, tuple(intensity_files), START,
                          1.0, 64, 1.0, "llama-1b", "vllm", 8, 300, "seasonal-24h")  # fmt: skip
    setup = load_setup(inputs, 0.0)
    assert sorted(j.job_id for j in setup.jobs) == ["a", "a.2", "b", "b.2"]
    run = replay_policy(setup, "run-now")
    assert sorted(o.job_id for o in run.outcomes) == ["a", "a.2", "b", "b.2"]
    assert run.rejected == 0
