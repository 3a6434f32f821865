"""Replay summaries: savings per job actually run, never from totals over different jobs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from daemon.replay.attribution import split_savings
from daemon.replay.driver import JobOutcome, PolicyRun, replay_policy
from daemon.replay.inputs import ReplayInputs, load_setup, parse_duration_s, parse_time
from daemon.replay.solvers import Solved, bound_row, optimum_row
from daemon.replay.summary import summarise
from policies.bound import LowerBound
from policies.optimum import IntegerOptimum
from tests.daemon.replay.conftest import START, replay_inputs


def _outcome(job_id: str, grams: float, late: bool = False) -> JobOutcome:
    start = START + timedelta(minutes=int(job_id[1:]))
    deadline = start + timedelta(minutes=5 if late else 60)
    return JobOutcome(job_id, start, deadline, "r", "Z", "T4", start,
                      start + timedelta(minutes=10), 3.6e6, 100.0, 100.0, grams,
                      0.0)  # fmt: skip


def _run(policy: str, grams: dict[str, float], rejected: int = 0) -> PolicyRun:
    outcomes = tuple(_outcome(j, g) for j, g in grams.items())
    return PolicyRun(policy, {}, outcomes, rejected, 0)


def test_a_policy_that_rejects_half_the_jobs_saves_only_what_it_saves_per_job() -> None:
    """Two jobs of 10 g and 30 g under run-now; a policy that rejects the 30 g job and runs
    the other for 9 g saved 10 %, not 1 - 9/40; the oracle share is taken on the same job."""
    base = _run("run-now", {"j1": 10.0, "j2": 30.0})
    half = _run("wait-awhile", {"j1": 9.0}, rejected=1)
    oracle = _run("oracle", {"j1": 8.0, "j2": 20.0})
    rows = {r["policy"]: r for r in summarise([base, half, oracle])}
    assert rows["wait-awhile"]["jobs"] == 1 and rows["wait-awhile"]["rejected"] == 1
    assert rows["wait-awhile"]["compared_jobs"] == 1
    assert rows["wait-awhile"]["savings_vs_run_now"] == pytest.approx(0.1)
    assert rows["wait-awhile"]["oracle_savings_captured"] == pytest.approx(0.5)
    assert rows["wait-awhile"]["g_per_job"] == pytest.approx(9.0)
    assert rows["oracle"]["savings_vs_run_now"] == pytest.approx(1 - 28 / 40)
    assert rows["oracle"]["oracle_savings_captured"] == pytest.approx(1.0)
    assert rows["run-now"]["savings_vs_run_now"] == 0.0


def test_the_oracle_share_is_taken_against_the_oracle_as_it_comes() -> None:
    """``tune --policy oracle --grid min_saving=...`` measured every setting against the first
    one (the first run named ``oracle``); only an oracle with no parameters is the reference."""
    base = _run("run-now", {"j1": 10.0})
    tuned = PolicyRun("oracle", {"min_saving": 0.2}, (_outcome("j1", 9.0),), 0, 0)
    plain = _run("oracle", {"j1": 6.0})
    rows = summarise([base, tuned, plain])
    assert rows[1]["oracle_savings_captured"] == pytest.approx(0.25)
    assert "oracle_savings_captured" not in summarise([base, tuned])[1]


def test_no_gap_to_the_bound_or_optimum_for_a_policy_that_missed_a_deadline() -> None:
    """The bound and the best schedule meet every deadline: a policy that ran every job but
    ended one late (here below the bound, by running it late) gets no gap, as one that
    rejected a job gets none (a negative gap read as beating the bound)."""
    base = _run("run-now", {"j1": 10.0, "j2": 30.0})
    late = PolicyRun("carbon-lookahead", {}, (_outcome("j1", 5.0), _outcome("j2", 10.0, True)),
                     0, 0)  # fmt: skip
    rows = summarise([base, late])
    assert rows[1]["deadline_misses"] == 1
    bound = LowerBound(20.0, 2, (), 1, None, 10, 5)
    bound_row(Solved(bound, 0.0), rows)
    best = IntegerOptimum(25.0, 25.0, True, 2, (), 300.0, 10, 5)
    optimum_row(Solved(best, 0.0), rows)
    assert rows[0]["gap_to_bound"] == pytest.approx(1.0)
    assert rows[0]["gap_to_optimum"] == pytest.approx(0.6)
    assert rows[1]["gap_to_bound"] is None and rows[1]["gap_to_optimum"] is None


def test_the_solvers_notes_give_small_grams_as_the_policy_rows_do() -> None:
    """The lp-bound and mip-optimum lines printed grams with one decimal: "0.0 g" for a bound
    of 0.02 g, beside policy rows of 0.03 g. Below 100 g they now keep four digits."""
    rows = summarise([_run("run-now", {"j1": 0.03})])
    bound = LowerBound(0.0234, 1, (), 3, 3600.0, 10, 5, windows_g=0.0212, dual_g=0.0234,
                       dual_steps=4)  # fmt: skip
    note = bound_row(Solved(bound, 0.0), rows)["note"]
    assert note.startswith("lp-bound: 0.0234 g over 1 jobs (3 windows of 3600.0s, 10 variables,")
    assert ": 0.0212 g; the whole span's Lagrangian dual: 0.0234 g after 4 steps;" in note
    best = IntegerOptimum(0.0251, 0.0249, False, 1, (), 300.0, 10, 5)
    note = optimum_row(Solved(best, 0.0), rows)["note"]
    assert note.startswith("mip-optimum: 0.0251 g over 1 jobs (starts every 300 s, time limit, "
                           "dual bound 0.0249 g,")  # fmt: skip
    big = LowerBound(24_176.04, 1, (), 1, None, 10, 5)
    assert bound_row(Solved(big, 0.0), rows)["note"].startswith("lp-bound: 24,176.0 g over")


def test_without_run_now_there_is_no_saving() -> None:
    (row,) = summarise([_run("spatial", {"j1": 5.0})])
    assert row["savings_vs_run_now"] is None and "oracle_savings_captured" not in row


@pytest.mark.shared_data
def test_every_row_has_the_same_keys_when_a_policy_ran_no_job(
    trace: Path, cluster_file: Path, intensity_files: list[Path]
) -> None:
    """``--json`` rows of one replay have one shape: a policy that ran no job (every one
    rejected or expired) lacked ``oracle_savings_captured``, ``spatial_saving`` and
    ``temporal_saving``, which the other rows had; it now has them, None."""
    setup = load_setup(replay_inputs(trace, cluster_file, intensity_files, 0.1), 4 * 3600.0)
    runs = [replay_policy(setup, name) for name in ("run-now", "oracle")]
    runs.append(PolicyRun("wait-awhile", {}, (), len(setup.jobs), 0))
    rows = summarise(runs)
    split_savings(setup, runs, rows)
    assert rows[1]["oracle_savings_captured"] == pytest.approx(1.0)
    assert set(rows[2]) == set(rows[0]) == set(rows[1])
    for key in ("oracle_savings_captured", "spatial_saving", "temporal_saving"):
        assert rows[2][key] is None


def test_mooncake_case_of_issue_15(shared_data: Path) -> None:
    """The case that read "38 % saved, 140 % of the oracle" while wait-awhile rejected half the
    jobs (Quebec-homed conversation jobs do not fit a T4): now every job runs and the savings
    are per job run."""
    data = shared_data / "carbon_intensity"
    inputs = ReplayInputs(
        (shared_data / "llm_traces/mooncake_fast25/conversation_trace.jsonl",), "mooncake",
        Path(__file__).parents[3] / "examples/cluster-paper.toml",
        (data / "electricitymaps_srmadani/CA-QC_2023_hourly.csv",
         data / "electricitymaps_hpe_sustain-cluster/US-CAL-CISO_2023_hourly.csv",
         data / "electricitymaps_jasonm-jones/US-NW-PACE_2023_hourly.csv"),
        parse_time("2023-09-11"), 0.25, 256, 3.0, "llama-3b", "vllm", 8, 60, "blend",
    )  # fmt: skip
    setup = load_setup(inputs, parse_duration_s("4h"))
    runs = [replay_policy(setup, name) for name in ("run-now", "wait-awhile")]
    rows = {r["policy"]: r for r in summarise(runs)}
    assert rows["wait-awhile"]["rejected"] == 0
    assert rows["wait-awhile"]["jobs"] == rows["run-now"]["jobs"] == len(setup.jobs)
    assert rows["wait-awhile"]["compared_jobs"] == len(setup.jobs)
