"""End-to-end replays on small hand-made traces, through the driver and the CLI: what each
policy's replay, the LP bound and the MIP optimum come to, and how the replay runs the
daemon's service. The command's output is tested in test_replay_cli.py, its options in
test_replay_options.py."""

from __future__ import annotations

import csv
import itertools
import json
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.replay import driver
from daemon.replay.driver import PolicyRun, replay_policy
from daemon.replay.inputs import (
    load_setup,
    parse_duration_s,
)
from daemon.replay.summary import summarise
from daemon.reports.pareto import mark_front
from tests.daemon.replay.conftest import START, replay_inputs, write_azure, write_intensity
from tests.daemon.replay.replay_argv import input_options

POLICIES = ("run-now", "lowest-energy", "spatial", "wait-awhile", "carbon-window", "oracle")


@pytest.mark.parametrize("slack", ["0", "6h"])
def test_every_policy_meets_every_deadline(
    trace: Path, cluster_file: Path, intensity_files: list[Path], slack: str
) -> None:
    setup = load_setup(replay_inputs(trace, cluster_file, intensity_files), parse_duration_s(slack))
    runs = [replay_policy(setup, name) for name in POLICIES]
    rows = {row["policy"]: row for row in summarise(runs)}
    for name in POLICIES:
        assert rows[name]["jobs"] == len(setup.jobs), name
        assert rows[name]["deadline_misses"] == 0, name
        assert rows[name]["total_g"] > 0
    assert rows["carbon-window"]["total_g"] < rows["run-now"]["total_g"]
    assert rows["spatial"]["total_g"] < rows["run-now"]["total_g"]
    assert rows["run-now"]["savings_vs_run_now"] == 0.0
    if slack == "6h":  # time shifting pays in California's clean noon
        assert rows["carbon-window"]["total_g"] < rows["spatial"]["total_g"]
        assert rows["carbon-window"]["mean_wait_s"] > rows["spatial"]["mean_wait_s"]


def test_runs_longer_than_estimated_last_longer_and_use_more_energy(
    trace: Path, cluster_file: Path, intensity_files: list[Path]
) -> None:
    """``--truth-factor``: the estimator is 20 % low; runs last and draw energy accordingly and
    the planner's margins still keep every deadline."""
    exact = load_setup(replay_inputs(trace, cluster_file, intensity_files), parse_duration_s("6h"))
    slow = replace(exact, truth_factor=1.2)
    for name in ("run-now", "carbon-window"):
        base = {o.job_id: o for o in replay_policy(exact, name).outcomes}
        run = replay_policy(slow, name)
        assert {o.job_id for o in run.outcomes} == set(base)
        for outcome in run.outcomes:
            assert not outcome.missed_deadline, (name, outcome.job_id)
        if name == "run-now":  # same starts: each run is 20 % longer, with 20 % more energy
            for outcome in run.outcomes:
                before = base[outcome.job_id]
                ran = (outcome.ended_at - outcome.started_at).total_seconds()
                assert ran == pytest.approx(1.2 * (before.ended_at - before.started_at)
                                            .total_seconds(), rel=1e-3)  # fmt: skip
                assert outcome.energy_j == pytest.approx(1.2 * before.energy_j, rel=1e-3)


def test_a_long_guard_holds_no_late_job_for_a_cheaper_slot(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Runs six times their estimate, no slack, a 5-minute tick and a 30-minute guard: a job
    past its latest safe start starts on a free device at once instead of waiting for a
    slot that is cheaper by rounding only (Quebec is flat here). Before the rescue path
    started late jobs now, `carbon-window` with this guard missed 2 deadlines and
    `wait-awhile` 1."""
    argv = ["replay", *input_options(trace, cluster_file, intensity_files), "--days", "0.5",
            "--slack", "0", "--model", "llama-1b", "--requests-per-job", "64", "--tick", "300",
            "--truth-factor", "6", "--policy", "run-now,carbon-window:guard_s=1800,wait-awhile",
            "--json"]  # fmt: skip
    assert main(argv) == 0
    rows = {r["policy"]: r for r in json.loads(capsys.readouterr().out)}
    for name in ("carbon-window", "wait-awhile"):
        assert rows[name]["jobs"] == rows["run-now"]["jobs"] > 0
        assert rows[name]["rejected"] == 0
        assert rows[name]["deadline_misses"] == 0, name


def test_replay_goes_through_the_daemon_service(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path
) -> None:
    from datetime import timedelta

    from daemon.replay.harness import ServiceHarness
    from policies import get_policy

    setup = load_setup(replay_inputs(trace, cluster_file, intensity_files, 0.1), 3600.0)
    job = setup.jobs[0]
    with ServiceHarness(get_policy("carbon-window"), setup.cluster, setup.signals,
                        tmp_path, 60, 86400) as harness:  # fmt: skip
        harness.submit(job)
        assert harness.queued == 1
        now = job.submitted_at
        for _ in range(30):
            harness.tick(now)
            now += timedelta(minutes=5)
        assert harness.ledger.job_state(job.job_id) == "succeeded"
        decision = harness.ledger.latest_decision(job.job_id)
        assert decision is not None and decision.action == "start"
        [run] = harness.finished
        assert run.job == job and run.plan.region == decision.region


def test_a_gpu_is_reused_at_the_tick_its_run_ends(
    trace: Path, intensity_files: list[Path], tmp_path: Path
) -> None:
    """The replay reconciles finished runs before planning: on a one-GPU cluster, each queued
    job starts at the first tick at or after the previous run's end, not one tick later."""
    one_gpu = tmp_path / "one.toml"
    one_gpu.write_text('[[regions]]\nname = "quebec"\nzone = "CA-QC"\n'
                       'gpus = [{ type = "T4", count = 1 }]\n', encoding="utf-8")  # fmt: skip
    inputs = replace(replay_inputs(trace, one_gpu, intensity_files, 0.1),
                     intensity=(intensity_files[0],))  # fmt: skip
    setup = load_setup(inputs, parse_duration_s("6h"))
    outcomes = sorted(replay_policy(setup, "run-now").outcomes, key=lambda o: o.started_at)
    queued = [(a, b) for a, b in itertools.pairwise(outcomes) if b.arrival < a.ended_at]
    assert len(queued) >= 2
    for before, after in queued:
        gap_s = (after.started_at - before.ended_at).total_seconds()
        assert 0 <= gap_s < setup.tick_s, (before.job_id, after.job_id, gap_s)


def test_the_clock_skips_reading_the_wakeup_only_where_it_cannot_matter(
    trace: Path, cluster_file: Path, intensity_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver reads the service's next wakeup only when no job arrives within a tick: the
    ticks visited and every outcome are those of a clock that always reads it."""
    setup = load_setup(replay_inputs(trace, cluster_file, intensity_files, 0.5),
                       parse_duration_s("6h"))  # fmt: skip

    def replay() -> tuple[list[datetime], PolicyRun]:
        ticks: list[datetime] = []
        return ticks, replay_policy(setup, "carbon-window", progress=ticks.append)

    ticks, run = replay()
    monkeypatch.setattr(driver, "_wakeup", lambda setup, service, now, arrival:
                        service.next_wakeup(now))  # fmt: skip
    always_ticks, always = replay()
    assert ticks == always_ticks
    assert run.outcomes == always.outcomes
    gaps = {b - a for a, b in itertools.pairwise(ticks)}
    assert len(gaps) > 1  # ticks one apart (arrivals) and jumps (wakeups)


def test_replay_bound_is_below_every_policy_that_met_every_deadline(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    argv = ["replay", *input_options(trace, cluster_file, intensity_files), "--days", "0.5",
            "--slack", "2h", "--policy", "run-now,spatial,carbon-window,carbon-lookahead,oracle",
            "--model", "llama-1b", "--requests-per-job", "64", "--tick", "300", "--json",
            "--bound", "--forecaster", "seasonal-24h"]  # fmt: skip
    assert main(argv) == 0
    rows = {r["policy"]: r for r in json.loads(capsys.readouterr().out)}
    bound = rows.pop("lp-bound")
    assert bound["total_g"] > 0 and bound["jobs"] == rows["run-now"]["jobs"]
    for name, row in rows.items():
        assert row["deadline_misses"] == 0, name
        assert row["gap_to_bound"] is not None and row["gap_to_bound"] >= -1e-9, name
    assert rows["carbon-window"]["gap_to_bound"] < rows["run-now"]["gap_to_bound"]
    # The saving splits into placement and start time, exactly.
    for name, row in rows.items():
        parts = row["spatial_saving"] + row["temporal_saving"]
        assert parts == pytest.approx(row["savings_vs_run_now"], abs=1e-9), name
    assert rows["run-now"]["spatial_saving"] == pytest.approx(0.0, abs=1e-12)
    assert rows["run-now"]["temporal_saving"] == pytest.approx(0.0, abs=1e-12)
    assert 0.0 <= bound["temporal_only_potential"] < 1.0


@pytest.mark.parametrize("window", [None, "30m"])
def test_replay_optimum_lies_between_the_bound_and_every_policy(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str], window: str | None, tmp_path: Path,
) -> None:  # fmt: skip
    """Policies start on the 300 s ticks, so each schedule is one the MIP (starts every 300 s)
    could have chosen: the LP bound <= the MIP optimum <= every policy that met every deadline;
    with the bound on 30-minute windows too (their sum, then the whole span's dual). The best
    schedule's jobs are in ``optimum.csv`` under ``--out``, and its waits and regions in its
    row."""
    argv = ["replay", *input_options(trace, cluster_file, intensity_files), "--days", "0.1",
            "--slack", "2h", "--policy", "run-now,carbon-window,carbon-lookahead",
            "--model", "llama-1b", "--requests-per-job", "64", "--tick", "300", "--json",
            "--bound", "--optimum", "--forecaster", "seasonal-24h",
            "--out", str(tmp_path)]  # fmt: skip
    if window:
        argv += ["--bound-window", window]
    assert main(argv) == 0
    rows = {r["policy"]: r for r in json.loads(capsys.readouterr().out)}
    best, bound = rows.pop("mip-optimum"), rows.pop("lp-bound")
    assert best["optimal"] and best["jobs"] == bound["jobs"] == rows["run-now"]["jobs"]
    assert best["like_for_like"] is True and "like for like" not in best["note"]
    with (tmp_path / "slack_2h" / "optimum.csv").open() as handle:
        schedule = list(csv.DictReader(handle))
    assert len(schedule) == best["jobs"]
    grams = sum(float(r["total_g"]) for r in schedule)  # each rounded to 1e-6 g
    assert grams == pytest.approx(best["total_g"], rel=1e-6, abs=1e-6 * len(schedule))
    regions = Counter(r["region"] for r in schedule)
    assert best["region_share"] == pytest.approx({k: n / len(schedule) for k, n in regions.items()})
    waits = [float(r["wait_s"]) for r in schedule]
    assert min(waits) >= 0 and best["mean_wait_s"] == pytest.approx(sum(waits) / len(waits))
    assert bound["total_g"] <= best["total_g"] * (1 + 1e-9)
    if window:
        assert bound["bound_windows"] > 1 and "Lagrangian dual" in bound["note"]
        assert bound["total_g"] == max(bound["bound_windows_g"], bound["bound_dual_g"])
    else:
        assert bound["bound_windows"] == 1 and bound["bound_dual_g"] is None
    for name, row in rows.items():
        assert row["deadline_misses"] == 0, name
        assert row["gap_to_optimum"] >= -1e-9, name


_TABLES = ("jobs", "transitions", "decisions", "runs", "outcomes", "intensity_samples")


def _ledger_rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in _TABLES}
    finally:
        db.close()


@pytest.mark.parametrize("policy", ["run-now", "carbon-window"])
def test_the_rows_the_ledger_keeps_change_no_recorded_fact(
    trace: Path,
    cluster_file: Path,
    intensity_files: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    policy: str,
) -> None:
    """A replay whose ledger reads every row back (nothing kept) writes the same rows, with
    the same values, as one answered from the kept rows; noisy run times end runs early and
    late."""
    from daemon.ledger import kept

    inputs = replay_inputs(trace, cluster_file, intensity_files, 1.0)
    setup = replace(load_setup(inputs, 6 * 3600.0), truth_factor=1.2,
                    duration_noise=0.3)  # fmt: skip
    (tmp_path / "kept").mkdir()
    (tmp_path / "read").mkdir()
    fast = replay_policy(setup, policy, state_dir=tmp_path / "kept")
    monkeypatch.setattr(kept, "JOBS_KEPT", 0)
    slow = replay_policy(setup, policy, state_dir=tmp_path / "read")
    assert fast.outcomes == slow.outcomes
    rows = _ledger_rows(tmp_path / "kept" / "ledger.db")
    assert rows == _ledger_rows(tmp_path / "read" / "ledger.db")
    assert len(rows["outcomes"]) == len(setup.jobs) > 0
    if policy == "carbon-window":  # some jobs were held, then started: several decisions
        assert len(rows["decisions"]) > len(setup.jobs)


def test_jobs_still_running_when_the_replay_stops_are_counted_to_their_end(
    trace: Path, cluster_file: Path, intensity_files: list[Path]
) -> None:
    """The replay stops at the span's end once nothing waits; the jobs still running then are
    ``unfinished`` but accounted to the end their simulated run reaches (in ``jobs`` and the
    grams), not dropped."""
    setup = load_setup(replay_inputs(trace, cluster_file, intensity_files, 45 / 1440), 0.0)
    run = replay_policy(setup, "run-now")
    row = summarise([run])[0]
    assert run.unfinished > 0
    assert sorted(o.job_id for o in run.outcomes) == sorted(j.job_id for j in setup.jobs)
    assert row["jobs"] == len(setup.jobs) and row["unfinished"] == run.unfinished
    after = [o for o in run.outcomes if o.ended_at > setup.end]
    assert len(after) >= run.unfinished
    assert all(o.total_g > 0 for o in after)
    assert row["total_g"] == pytest.approx(sum(o.total_g for o in run.outcomes))


def _overloaded(tmp_path: Path, jobs: int = 5, tokens: int = 800) -> tuple[Path, Path, Path]:
    """``jobs`` jobs of 64 requests at once on one T4 (trace, cluster, intensity), and one
    request past a 0.1-day span so that nothing repeats: at slack 0 not all meet their
    deadline."""
    cluster = tmp_path / "one.toml"
    cluster.write_text('[[regions]]\nname = "quebec"\nzone = "CA-QC"\n'
                       'gpus = [{ type = "T4", count = 1 }]\n')  # fmt: skip
    rows = [(i * 0.1, tokens, 150) for i in range(jobs * 64)] + [(3 * 3600.0, 800, 150)]
    trace = write_azure(tmp_path / "AzureLLMInferenceTrace_conv.csv", rows)
    begin = START - timedelta(days=8)
    intensity = write_intensity(tmp_path / "qc.csv", "CA-QC", [30.0] * 11 * 24, begin)
    return trace, cluster, intensity


def test_jobs_that_expire_before_they_start_are_counted_as_not_run(tmp_path: Path) -> None:
    """Five jobs at once on one T4 at slack 0: the daemon expires those whose deadline passes
    before a GPU frees up. They emit nothing, like a rejected job, and are counted so (they
    were in no figure: "2 run, 0 rejected, 0 misses" for 5 jobs, on the tuning front)."""
    trace, cluster, intensity = _overloaded(tmp_path)
    setup = load_setup(replay_inputs(trace, cluster, [intensity], 0.1), 0.0)
    assert len(setup.jobs) == 5
    run = replay_policy(setup, "run-now")
    assert 0 < len(run.outcomes) < len(setup.jobs)
    assert run.rejected == len(setup.jobs) - len(run.outcomes)
    row = summarise([run])[0]
    mark_front([row])
    assert row["excluded"] == f"{run.rejected} rejected" and not row["pareto"]


def test_a_bound_that_no_schedule_meets_is_a_row_without_grams(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """40 long jobs at once on one T4: no schedule meets every deadline, even fractionally (the
    LP is infeasible), and ``--bound`` gives an ``lp-bound`` row with no grams and a note
    saying why (it was HiGHS's BoundError as a traceback after the replays, and no output)."""
    trace, cluster, intensity = _overloaded(tmp_path, 40, 4000)
    argv = ["replay", "--jobs", str(trace), "--jobs-format", "azure", "--cluster", str(cluster),
            "--intensity", str(intensity), "--start", "2023-06-05", "--days", "0.1",
            "--requests-per-job", "64", "--model", "llama-1b", "--slack", "0",
            "--policy", "run-now", "--bound", "--optimum", "--workers", "1", "--json"]  # fmt: skip
    assert main(argv) == 0
    rows = {r["policy"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["lp-bound"]["total_g"] is None and rows["lp-bound"]["jobs"] == 40
    assert "meets every deadline" in rows["lp-bound"]["note"]
    # the MIP proves it too: its note said "time limit, dual bound nan g"
    assert rows["mip-optimum"]["total_g"] is None
    assert "no schedule meets every deadline within the devices" in rows["mip-optimum"]["note"]
    assert main([a for a in argv if a != "--json"]) == 0
    assert "gap_to_optimum" in _headers(capsys.readouterr().out)  # the table had no column
    assert rows["run-now"]["gap_to_bound"] is None and rows["run-now"]["rejected"] > 0


def _headers(out: str) -> list[str]:
    """The column names of the first table in ``out``, each put together again from the lines
    the table wrapped it over."""
    lines = out.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("+"))  # piped: ASCII
    rule = next(i for i, line in enumerate(lines) if line.startswith("|-"))
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[top + 1 : rule]]
    return ["".join(parts) for parts in zip(*cells, strict=True)]


def test_a_slack_longer_than_the_span_and_two_days_replays_to_the_last_deadline(
    tmp_path: Path, trace: Path, cluster_file: Path
) -> None:
    """``--days 0.25 --slack 4d`` on grids that get cleaner every hour: wait-awhile holds
    every job for the next day's lower intensity up to its latest safe start, four days on.
    The replay stopped two days after its span ("N jobs still queued two days after the
    span", exit 1) though every job would have run by its deadline."""
    begin = START - timedelta(days=8)
    falling = [1000.0 - 2.0 * h for h in range(17 * 24)]
    intensity = [
        write_intensity(tmp_path / "qc.csv", "CA-QC", falling, begin),
        write_intensity(tmp_path / "ciso.csv", "US-CAL-CISO", falling, begin),
    ]
    setup = load_setup(replay_inputs(trace, cluster_file, intensity, 0.25), 4 * 86400.0)
    run = replay_policy(setup, "wait-awhile")
    assert len(run.outcomes) == len(setup.jobs) > 0
    assert not any(o.missed_deadline for o in run.outcomes)
    assert max(o.started_at for o in run.outcomes) > setup.end + timedelta(days=2)
