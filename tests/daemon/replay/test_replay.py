"""End-to-end replays on small hand-made traces, through the driver and the CLI."""

from __future__ import annotations

import csv
import itertools
import json
import re
import shlex
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from daemon.cli import main, replay_cmd
from daemon.cli.replay_cmd import mark_front
from daemon.replay import driver
from daemon.replay import inputs as inputs_module
from daemon.replay.driver import PolicyRun, replay_policy
from daemon.replay.errors import ReplayInputError
from daemon.replay.inputs import (
    MAX_GRID_SETTINGS,
    PolicySpec,
    load_setup,
    parse_duration_s,
    parse_grid,
    parse_policies,
)
from daemon.replay.report import summarise
from tests.daemon.replay.conftest import START, replay_inputs, write_azure, write_intensity

POLICIES = ("run-now", "lowest-energy", "spatial", "wait-awhile", "carbon-window", "oracle")


def _inputs(trace: Path, cluster_file: Path, intensity_files: list[Path]) -> list[str]:
    """The command line's input options: the Azure trace, the cluster and the intensity files,
    from 2023-06-05."""
    argv = ["--jobs", str(trace), "--jobs-format", "azure", "--cluster", str(cluster_file),
            "--start", "2023-06-05"]  # fmt: skip
    for path in intensity_files:
        argv += ["--intensity", str(path)]
    return argv


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


def test_bad_duration_options_are_rejected(
    trace: Path, cluster_file: Path, intensity_files: list[Path]
) -> None:
    inputs = replace(replay_inputs(trace, cluster_file, intensity_files), truth_factor=0.0)
    with pytest.raises(ReplayInputError, match="--truth-factor"):
        load_setup(inputs, 0.0)


def test_replay_cli_json_and_outputs(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    out = tmp_path / "out"
    argv = ["replay", *_inputs(trace, cluster_file, intensity_files), "--days", "0.5",
            "--slack", "0,2h", "--policy", "run-now,carbon-window:herd_penalty=0.1",
            "--model", "llama-1b", "--requests-per-job", "64", "--tick", "300",
            "--out", str(out), "--json", "--forecaster", "seasonal-24h"]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["slack_s"], r["policy"]) for r in rows] == [
        (0.0, "run-now"),
        (0.0, "carbon-window"),
        (7200.0, "run-now"),
        (7200.0, "carbon-window"),
    ]
    for field in ("total_g", "operational_g", "embodied_g", "energy_kwh", "jobs",
                  "deadline_misses", "mean_wait_s", "p95_wait_s", "region_share",
                  "savings_vs_run_now"):  # fmt: skip
        assert field in rows[0]
    assert rows[1]["params"] == {"herd_penalty": 0.1}
    with (out / "slack_2h" / "jobs.csv").open(encoding="utf-8") as handle:
        jobs = list(csv.DictReader(handle))
    assert len(jobs) == 2 * rows[2]["jobs"]
    assert (out / "slack_0h" / "intensity.png").stat().st_size > 1000
    assert (out / "slack_0h" / "cumulative.png").stat().st_size > 1000


def test_a_list_of_slacks_reads_each_input_file_once(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """``--slack 0,2h,4h`` read every trace and intensity file once per slack (~10 s a slack
    for 2 million requests); each is read once, and each slack's rows are those of a replay
    of that slack alone."""
    read: list[str] = []

    def recording(reader: Callable[..., object]) -> Callable[..., object]:
        def read_once(path: Path, *args: object) -> object:
            read.append(path.name)
            return reader(path, *args)

        return read_once

    for name in ("read_requests", "read_intensity", "load_cluster"):
        monkeypatch.setattr(inputs_module, name, recording(getattr(inputs_module, name)))
    argv = ["replay", *_inputs(trace, cluster_file, intensity_files), "--days", "0.5",
            "--policy", "run-now,carbon-window", "--model", "llama-1b",
            "--requests-per-job", "64", "--tick", "300", "--json",
            "--forecaster", "seasonal-24h", "--workers", "1"]  # fmt: skip
    assert main([*argv, "--slack", "0,2h,4h"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(read) == sorted(["cluster.toml", trace.name, "qc.csv", "ciso.csv"])
    assert main([*argv, "--slack", "2h"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert [r for r in rows if r["slack_s"] == 7200.0] == alone


def test_two_settings_of_one_policy_are_told_apart_in_the_table_and_jobs_csv(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """``--policy carbon-window:min_saving=0,carbon-window:min_saving=0.9`` printed two rows
    named ``carbon-window`` and wrote jobs.csv rows (and figure legends) that could not be told
    apart; they now carry the setting as ``--policy`` names it."""
    out = tmp_path / "out"
    policies = "run-now,carbon-window:min_saving=0,carbon-window:min_saving=0.9"
    argv = ["replay", *_inputs(trace, cluster_file, intensity_files), "--days", "0.1",
            "--policy", policies, "--model", "llama-1b", "--requests-per-job", "64",
            "--tick", "300", "--workers", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    cells: list[str] = []  # the policy column; a piped table folds a long cell over lines
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("| 4 "):
            cells.append("")
        if cells and line.startswith("| "):
            cells[-1] += line.split("|")[2].strip()
    assert cells == policies.split(",")
    with (out / "slack_4h" / "jobs.csv").open(encoding="utf-8") as handle:
        counts = Counter(row["policy"] for row in csv.DictReader(handle))
    assert list(counts) == policies.split(",") and len(set(counts.values())) == 1


def test_the_piped_table_keeps_each_row_on_one_line(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The replay's table has 19 columns; piped (here: captured, not a TTY) it was 200
    characters wide and folded its cells over lines ("carbon-w" above "indow", "califor" above
    "nia:50%"), so `grep carbon-window` found no row and awk could not read a column. Each
    row is now one line, every cell whole, its columns the header's."""
    argv = ["replay", *_inputs(trace, cluster_file, intensity_files), "--days", "0.1",
            "--policy", "run-now,carbon-window", "--model", "llama-1b",
            "--requests-per-job", "64", "--tick", "300", "--workers", "1"]  # fmt: skip
    assert main(argv) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    table = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines]
    header, rows = table[0], table[1:]
    assert header[:3] == ["slack_h", "policy", "total_g"] and header[-1] == "regions"
    assert [row[1] for row in rows] == ["run-now", "carbon-window"]
    for row in rows:
        assert len(row) == len(header) and all(row), row
        assert all(re.fullmatch(r"[a-z]+:\d+%", share) for share in row[-1].split()), row


@pytest.mark.parametrize(
    ("share", "shown"),
    [(-0.0002, "0.0%"), (-0.0, "0.0%"), (0.0004, "0.0%"), (-0.0006, "-0.1%"), (0.7438, "74.4%"),
     (None, "-")],
)  # fmt: skip
def test_a_share_that_rounds_to_zero_is_shown_unsigned(share: float | None, shown: str) -> None:
    """The replay table's shares: carbon-window's temporal saving of -0.02 % (its saving all
    placement) read ``-0.0%``, a loss that is none; shown ``0.0%`` now, as ``carbond report``
    shows its shares, and a share that rounds to -0.1 % keeps its sign."""
    assert replay_cmd._pct(share) == shown


def test_a_bad_trace_row_is_a_note_on_stderr_and_the_json_stays_clean(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A bad row used to stop the whole replay; now it is skipped and named, once for all the
    slacks, and the replay runs the other rows."""
    damaged = tmp_path / "damaged.csv"
    damaged.write_text(trace.read_text(encoding="utf-8") + "not a time,1,1\n", encoding="utf-8")
    lines = len(damaged.read_text(encoding="utf-8").splitlines())
    outputs = []
    for path in (trace, damaged):
        argv = ["replay", *_inputs(path, cluster_file, intensity_files), "--days", "0.5",
                "--slack", "0,2h", "--policy", "run-now", "--model", "llama-1b",
                "--requests-per-job", "64", "--tick", "300", "--json"]  # fmt: skip
        assert main(argv) == 0
        captured = capsys.readouterr()
        outputs.append((json.loads(captured.out), captured.err))
    (clean, clean_err), (rows, err) = outputs
    assert "carbond: note:" not in clean_err
    note = f"carbond: note: {damaged}:{lines}: TIMESTAMP is not a time: 'not a time'; row skipped"
    assert err.count(note) == 1
    assert [r["jobs"] for r in rows] == [r["jobs"] for r in clean]


def test_an_intensity_file_notes_only_the_cluster_zones_problems(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """One file of several zones (as the normalized one): the problems of a zone the cluster
    does not use (here FR's empty cell and missing hour, filled) were notes of every replay
    that read it; only the cluster's zones' are now, with the file's own and its unreadable
    rows (whose zone may be a cluster zone mistyped)."""
    lines = ["datetime,zone,carbon_intensity_g_per_kwh"]
    begin = START - timedelta(days=8)
    for path in intensity_files:  # the two zones' rows, then FR's with a bad one
        for row in path.read_text(encoding="utf-8").splitlines()[1:]:
            stamp, _, _, zone, value = row.split(",")
            lines.append(f"{stamp.replace(' ', 'T')}Z,{zone},{value}")
    lines += [f"{(begin + timedelta(hours=h)).isoformat()},FR,{'' if h == 5 else 50}"
              for h in range(11 * 24) if h != 9]  # fmt: skip
    lines.append(f"{begin.isoformat()},CA-Q C,z")  # unreadable: named whatever its zone
    lines[3] = lines[3].replace(",30.0", ",y")  # a bad CA-QC row: still a note
    joined = tmp_path / "zones.csv"
    joined.write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = ["replay", "--jobs", str(trace), "--jobs-format", "azure", "--cluster",
            str(cluster_file), "--intensity", str(joined), "--start", "2023-06-05", "--days",
            "0.1", "--policy", "run-now", "--model", "llama-1b", "--requests-per-job", "64",
            "--tick", "300", "--json"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err.splitlines()
    assert any(f"{joined}:4: CA-QC: bad_row" in line for line in err), err
    assert any(f"{joined}: CA-QC: filled" in line for line in err), err
    assert any(f"{joined}:{len(lines)}: CA-Q C: bad_row" in line for line in err), err
    assert not [line for line in err if ": FR: " in line]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("command", ["replay", "tune"])
def test_a_full_stderr_keeps_a_replay_with_notes_and_a_tune_plot(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path, command: str
) -> None:
    """``carbond replay ... 2>/dev/full`` with a bad trace row: its ``carbond: note:`` line,
    and ``tune --plot``'s ``wrote PLOT`` line, were printed straight to stderr, so the failed
    write ended the command with exit 1 and no output. They go through the guarded writer
    now: the lines are lost, the JSON (and the plot) stand, exit 0."""
    damaged = tmp_path / "damaged.csv"
    damaged.write_text(trace.read_text(encoding="utf-8") + "not a time,1,1\n", encoding="utf-8")
    plot = tmp_path / "front.png"
    argv = [command, *_inputs(damaged, cluster_file, intensity_files), "--days", "0.25",
            "--slack", "0", "--model", "llama-1b", "--requests-per-job", "64", "--tick", "300",
            "--json"]  # fmt: skip
    argv += ["--policy", "run-now"] if command == "replay" else [
        "--grid", "min_saving=0,0.5", "--plot", str(plot)]  # fmt: skip
    exe = Path(sys.executable).with_name("carbond")
    done = subprocess.run(["bash", "-c", f"{shlex.join([str(exe), *argv])} 2>/dev/full"],
                          capture_output=True, text=True, check=False, timeout=300)  # fmt: skip
    assert done.returncode == 0
    assert len(json.loads(done.stdout)) == (1 if command == "replay" else 2)
    assert command == "replay" or plot.stat().st_size > 0


def test_notes_escape_what_an_input_file_wrote(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A zone name with a terminal's escape sequences (an intensity file is third-party data)
    was printed raw in the notes, recolouring the terminal and setting its title."""
    evil = tmp_path / "evil.csv"
    evil.write_text(intensity_files[0].read_text(encoding="utf-8")
                    + "2023-06-01 00:00:00,X,X,EVIL\x1b]0;owned\x07\x1b[31m,x\n",
                    encoding="utf-8")  # fmt: skip
    argv = ["replay", *_inputs(trace, cluster_file, [evil, intensity_files[1]]), "--days",
            "0.1", "--policy", "run-now", "--model", "llama-1b", "--requests-per-job", "64",
            "--tick", "300", "--json"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "EVIL\\x1b]0;owned\\x07\\x1b[31m: bad_row" in err and "\x1b" not in err


def test_tune_marks_the_pareto_front(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    argv = ["tune", *_inputs(trace, cluster_file, intensity_files), "--days", "0.5",
            "--slack", "4h", "--model", "llama-1b", "--requests-per-job", "64", "--tick", "300",
            "--grid", "min_saving=0,0.5", "--json"]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["params"] for r in rows] == [{"min_saving": 0}, {"min_saving": 0.5}]
    assert any(r["pareto"] for r in rows)
    # each row says its slack, as replay's rows do (until 2026-12-07 tune's had none)
    assert [r["slack_s"] for r in rows] == [4 * 3600.0] * 2


def test_tuning_run_now_replays_it_once(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """``tune --policy run-now`` replayed run-now twice, as the baseline and as the setting
    tuned; it is replayed once, its one row as before."""
    replayed: list[str] = []
    real = replay_cmd.Replays

    def recording(setup: object, specs: list[PolicySpec], workers: int) -> object:
        replayed.extend(spec.label for spec in specs)
        return real(setup, specs, workers)  # type: ignore[arg-type]  # the real one, recorded

    monkeypatch.setattr(replay_cmd, "Replays", recording)
    argv = ["tune", *_inputs(trace, cluster_file, intensity_files), "--days", "0.5",
            "--slack", "4h", "--model", "llama-1b", "--requests-per-job", "64", "--tick", "300",
            "--policy", "run-now", "--json"]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert replayed == ["run-now"]
    assert [(r["policy"], r["params"], r["savings_vs_run_now"]) for r in rows] == [
        ("run-now", {}, 0.0)
    ]
    assert rows[0]["pareto"] and rows[0]["jobs"] > 0


def test_the_tuning_front_leaves_out_settings_that_reject_jobs_or_miss_deadlines() -> None:
    """Fewer grams bought with a missed deadline or a rejected job is not on the front, even
    where it beats every other setting on both grams and waiting."""
    row = {"rejected": 0, "deadline_misses": 0}
    rows = [
        {**row, "total_g": 100.0, "mean_wait_s": 10.0},
        {**row, "total_g": 90.0, "mean_wait_s": 5.0, "deadline_misses": 2},
        {**row, "total_g": 95.0, "mean_wait_s": 20.0},
        {**row, "total_g": 50.0, "mean_wait_s": 1.0, "rejected": 3, "deadline_misses": 1},
        {**row, "total_g": 101.0, "mean_wait_s": 11.0},
    ]
    mark_front(rows)
    assert [r["pareto"] for r in rows] == [True, False, True, False, False]
    assert [r["excluded"] for r in rows] == [
        None, "2 deadline misses", None, "3 rejected, 1 deadline misses", None,
    ]  # fmt: skip


def test_tune_keeps_settings_that_miss_deadlines_off_the_front(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Runs six times their estimate with no slack: the settings whose runs miss deadlines
    say so and are never on the front, in the JSON and in the table, though here the fewest
    grams are one of theirs."""
    argv = ["tune", *_inputs(trace, cluster_file, intensity_files), "--days", "0.5",
            "--slack", "0", "--model", "llama-1b", "--requests-per-job", "64", "--tick", "60",
            "--truth-factor", "6", "--grid", "duration_margin=0,2.5",
            "--grid", "guard_s=60,1800"]  # fmt: skip
    assert main([*argv, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    missed = [r for r in rows if r["deadline_misses"]]
    assert missed and len(missed) < len(rows)  # some settings miss, some do not
    cheapest = min(rows, key=lambda r: r["total_g"])
    assert cheapest["deadline_misses"] and not cheapest["pareto"]
    for r in rows:
        assert (r["excluded"] is not None) == bool(r["deadline_misses"] or r["rejected"])
        assert not (r["pareto"] and r["excluded"])
    assert any(r["pareto"] for r in rows)
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert f"no: {missed[0]['deadline_misses']} deadline misses" in table


def test_a_long_guard_holds_no_late_job_for_a_cheaper_slot(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Runs six times their estimate, no slack, a 5-minute tick and a 30-minute guard: a job
    past its latest safe start starts on a free device at once instead of waiting for a
    slot that is cheaper by rounding only (Quebec is flat here). Before the rescue path
    started late jobs now, `carbon-window` with this guard missed 2 deadlines and
    `wait-awhile` 1."""
    argv = ["replay", *_inputs(trace, cluster_file, intensity_files), "--days", "0.5",
            "--slack", "0", "--model", "llama-1b", "--requests-per-job", "64", "--tick", "300",
            "--truth-factor", "6", "--policy", "run-now,carbon-window:guard_s=1800,wait-awhile",
            "--json"]  # fmt: skip
    assert main(argv) == 0
    rows = {r["policy"]: r for r in json.loads(capsys.readouterr().out)}
    for name in ("carbon-window", "wait-awhile"):
        assert rows[name]["jobs"] == rows["run-now"]["jobs"] > 0
        assert rows[name]["rejected"] == 0
        assert rows[name]["deadline_misses"] == 0, name


@pytest.mark.parametrize(
    ("argv_tail", "message"),
    [
        (["--policy", "no-such-policy"], "unknown policy"),
        (["--policy", "carbon-window:herd=1"], "unknown parameter"),
        (["--slack", "soon"], "--slack: not a duration: 'soon'"),
        (["--slack", "0,4h,"], "--slack: not a duration: ''"),
        (["--slack", "4h,240m"], "--slack: '240m' is a slack given before"),
        (["--start", "yesterday"], "not a time"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    trace: Path, cluster_file: Path, intensity_files: list[Path], argv_tail: list[str],
    message: str, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    argv = ["replay", *_inputs(trace, cluster_file, intensity_files), "--days", "0.1"]
    assert main(argv + argv_tail) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "expected"), [("0", 0.0), ("90s", 90.0), ("30m", 1800.0), ("4h", 14400.0),
                           ("1.5d", 129600.0), ("12", 12.0)],
)  # fmt: skip
def test_durations(text: str, expected: float) -> None:
    assert parse_duration_s(text) == expected


def test_policy_specs_and_grids() -> None:
    specs = parse_policies("run-now,carbon-window:herd_penalty=0.1:home_only=true")
    assert [(s.name, s.params) for s in specs] == [
        ("run-now", {}),
        ("carbon-window", {"herd_penalty": 0.1, "home_only": True}),
    ]
    assert parse_grid(["a=1,2", "b=x"]) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    assert parse_grid(["a=true,1"]) == [{"a": True}, {"a": 1}]  # equal in Python, not here
    with pytest.raises(ReplayInputError):
        parse_grid(["a"])


@pytest.mark.parametrize(
    ("items", "message"),
    [(["guard_s=60", "guard_s=120"], "--grid: guard_s given twice"),
     (["guard_s=60,120,60.0"], "--grid 'guard_s=60,120,60.0': 60.0 given twice"),
     (["home_only=true,false,true"], "'home_only=true,false,true': True given twice")],
)  # fmt: skip
def test_a_grid_names_each_setting_once(items: list[str], message: str) -> None:
    """A key in two ``--grid`` items used to keep only the last item's values (60 was never
    replayed), and a value given twice was replayed twice."""
    with pytest.raises(ReplayInputError, match=re.escape(message)):
        parse_grid(items)


def test_a_grid_past_what_one_tune_should_replay_is_refused() -> None:
    """Six keys of ten values each were a million replays, started without a word."""
    items = [f"k{n}=0,1,2,3,4,5,6,7,8,9" for n in range(6)]
    message = "--grid: 10 k0 x 10 k1 x 10 k2 x 10 k3 x 10 k4 x 10 k5 are 1,000,000 settings"
    with pytest.raises(ReplayInputError, match=re.escape(message)):
        parse_grid(items)
    assert len(parse_grid(["a=" + ",".join(map(str, range(MAX_GRID_SETTINGS)))])) == 1000


def test_tune_refuses_a_key_in_both_the_policy_and_the_grid(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """``--policy carbon-window:min_saving=0.1 --grid min_saving=0,0.5`` replayed 0 and 0.5,
    the policy's 0.1 silently dropped; it is refused before any input is read."""
    argv = ["tune", *_inputs(trace, cluster_file, intensity_files), "--days", "0.5",
            "--policy", "carbon-window:min_saving=0.1:guard_s=60",
            "--grid", "min_saving=0,0.5", "--grid", "guard_s=60,120"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == ("carbond: error: --policy carbon-window:guard_s=60:min_saving=0.1 and --grid "
                   "both give guard_s, min_saving (give each once)\n")  # fmt: skip


def test_tune_names_a_bad_setting_before_reading_any_input(
    tmp_path: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A grid's typo was named only once every trace and intensity file had been read (a
    minute for a large trace); replay checks its policies first, and tune now does too."""
    missing = tmp_path / "not-yet-copied.csv"
    argv = ["tune", *_inputs(missing, cluster_file, intensity_files), "--days", "0.5",
            "--grid", "min_saving=0.1,O.2"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "min_saving=O.2" in err and "not-yet-copied" not in err


@pytest.mark.parametrize(
    ("text", "message"),
    [("carbon-window:min_saving=0.1:min_saving=0.2",
      "--policy 'carbon-window:min_saving=0.1:min_saving=0.2': min_saving given twice"),
     ("run-now,carbon-window,run-now", "--policy: run-now given twice"),
     ("carbon-window:guard_s=60, carbon-window : guard_s = 60 ",
      "--policy: carbon-window:guard_s=60 given twice")],
)  # fmt: skip
def test_a_policy_list_names_each_setting_once(text: str, message: str) -> None:
    """A parameter given twice kept only the last value (min_saving 0.1 was never replayed),
    and a policy given twice was replayed twice, its rows alike."""
    with pytest.raises(ReplayInputError, match=re.escape(message)):
        parse_policies(text)
    assert parse_policies(" carbon-window : min_saving = 0.1 ")[0].label == (
        "carbon-window:min_saving=0.1"
    )


def test_a_bad_slack_fails_before_an_out_folder_is_made_and_tune_takes_one(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """`replay --slack 4h,soon --out DIR` left an empty DIR behind; `tune --slack 0,4h` said
    only "not a duration" (tune replays one slack)."""
    argv = [*_inputs(trace, cluster_file, intensity_files), "--days", "0.1"]
    out = tmp_path / "out"
    assert main(["replay", *argv, "--slack", "4h,soon", "--out", str(out)]) == 2
    assert not out.exists()
    assert main(["tune", *argv, "--slack", "0,4h", "--grid", "guard_s=60"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "carbond: error: --slack: not a duration: 'soon' (use e.g. 0, 30m, 4h, 1d)",
        "carbond: error: --slack: tune sweeps one slack (replay takes a comma list)",
    ]


@pytest.mark.parametrize("command", ["replay", "tune"])
def test_an_output_that_cannot_be_written_fails_before_any_replay(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """`replay --out` under a file and `tune --plot` in a missing folder: exit 1 naming the
    path, and not one replay run first (their output used to be written after them all)."""
    monkeypatch.setattr(replay_cmd, "Replays", None)  # constructing it would fail the test
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    argv = [command, *_inputs(trace, cluster_file, intensity_files), "--days", "0.1"]
    target = blocker / "out" if command == "replay" else tmp_path / "missing" / "front.png"
    argv += (
        ["--out", str(target)]
        if command == "replay"
        else ["--grid", "guard_s=60", "--plot", str(target)]
    )
    assert main(argv) == 1
    reason = "Not a directory" if command == "replay" else "No such file or directory"
    assert capsys.readouterr().err == f"carbond: error: {target}: cannot write: {reason}\n"


@pytest.mark.parametrize(
    ("policy", "message"),
    [("carbon-window:min_saving=abc", "invalid parameter min_saving='abc': not a number"),
     ("run-now:foo=1", "run-now: unknown parameter(s) foo (known: lifetime_years)"),
     ("spatial:alternatives=1.5", "invalid parameter alternatives=1.5: not a whole number")],
)  # fmt: skip
def test_a_bad_policy_parameter_is_one_error_line(
    trace: Path, cluster_file: Path, intensity_files: list[Path], policy: str, message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """`replay --policy` and `tune --grid`: exit 2, one line naming the parameter, no
    traceback (a wrong type or an unknown keyword used to raise TypeError)."""
    name, grid = policy.split(":")
    argv = [*_inputs(trace, cluster_file, intensity_files), "--days", "0.1", "--model", "llama-1b"]
    assert main(["replay", *argv, "--policy", policy]) == 2
    assert main(["tune", *argv, "--policy", name, "--grid", grid]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and err.count(message) == 2
    assert err.count(f"carbond: error: --policy {policy}: ") == 1  # replay's
    assert err.count(f"carbond: error: --grid {grid}: ") == 1  # tune's names what it was given


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
    argv = ["replay", *_inputs(trace, cluster_file, intensity_files), "--days", "0.5",
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
    argv = ["replay", *_inputs(trace, cluster_file, intensity_files), "--days", "0.1",
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


def test_the_progress_bar_draws_on_a_terminal_stderr_while_json_goes_to_a_file(
    trace: Path, cluster_file: Path, intensity_files: list[Path]
) -> None:
    """``carbond replay --json > out.json`` on a terminal: the bar was drawn only when stdout
    was a TTY, so a redirected run showed no progress for minutes. It draws on stderr now,
    and stdout holds only the JSON."""
    import os
    import subprocess
    import sys

    primary, secondary = os.openpty()
    inputs = _inputs(trace, cluster_file, intensity_files)
    argv = [sys.executable, "-m", "daemon", "replay", *inputs, "--days", "0.5",
            "--policy", "run-now", "--json", "--workers", "1"]  # fmt: skip
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=secondary, timeout=120,
                          check=False, env={**os.environ, "COLUMNS": "120"})  # fmt: skip
    os.close(secondary)
    drawn = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal's other end closed: all read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(primary)
    assert done.returncode == 0
    assert json.loads(done.stdout)  # nothing but the JSON
    assert b"slack 4 h" in drawn  # the bar's label (the default slack), on the terminal


def test_an_out_that_is_a_file_says_it_is_not_a_directory(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """``replay --out results.csv`` (an existing file) said "cannot write: File exists"."""
    monkeypatch.setattr(replay_cmd, "Replays", None)  # no replay may run first
    target = tmp_path / "results.csv"
    target.write_text("kept\n")
    argv = ["replay", *_inputs(trace, cluster_file, intensity_files), "--days", "0.1"]
    assert main([*argv, "--out", str(target)]) == 1
    assert capsys.readouterr().err == f"carbond: error: {target}: cannot write: Not a directory\n"
    assert target.read_text() == "kept\n"


def test_replay_out_files_get_the_umasks_permissions(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path
) -> None:
    """``--out``'s jobs.csv came out 0600 (its temporary file's mode) whatever the umask, as
    ``export`` and ``report -o`` files did before them."""
    import os
    import stat

    out = tmp_path / "out"
    argv = ["replay", *_inputs(trace, cluster_file, intensity_files), "--days", "0.1",
            "--policy", "run-now", "--workers", "1", "--out", str(out)]  # fmt: skip
    old = os.umask(0o022)
    try:
        assert main(argv) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((out / "slack_4h" / "jobs.csv").stat().st_mode) == 0o644


@pytest.mark.parametrize(
    ("grid", "message"),
    [(["min_saving=0.1,abc"], "--grid min_saving=abc: invalid parameter min_saving='abc': "
                              "not a number"),
     (["guard_s=60", "nokey=1,2"], "--grid nokey=1: carbon-window: unknown parameter(s) nokey"),
     (["slot_s=0,300"], "--grid slot_s=0: invalid parameter slot_s=0: must be more than 0")],
)  # fmt: skip
def test_a_bad_grid_value_is_named_as_the_grid_gave_it(
    trace: Path, cluster_file: Path, intensity_files: list[Path], grid: list[str], message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """``tune --grid nokey=1,2`` said ``--policy carbon-window:nokey=1: ...``: an option the
    operator did not give, spelling a policy they did not write. The error names the --grid
    value, and --policy only for what --policy gave."""
    argv = ["tune", *_inputs(trace, cluster_file, intensity_files), "--days", "0.5"]
    for item in grid:
        argv += ["--grid", item]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"carbond: error: {message}") and err.count("\n") == 1
    assert "--policy" not in err
    assert main([*argv[:-2], "--policy", "carbon-window:nokey=1"]) == 2
    assert capsys.readouterr().err.startswith("carbond: error: --policy carbon-window:nokey=1: ")


def test_the_replay_table_counts_the_unfinished_jobs_as_the_json_does(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    argv = ["replay", *_inputs(trace, cluster_file, intensity_files), "--days", str(45 / 1440),
            "--slack", "0", "--policy", "run-now", "--requests-per-job", "64", "--model",
            "llama-1b", "--tick", "300", "--forecaster", "seasonal-24h"]  # fmt: skip
    assert main([*argv, "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["unfinished"] > 0
    assert main(argv) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines()
            if line.startswith("|")]  # fmt: skip
    rule = next(i for i, cells in enumerate(rows) if cells[0].startswith("-"))
    header = ["".join(cells).replace(" ", "") for cells in zip(*rows[:rule], strict=True)]
    values = [cell.strip() for cell in rows[rule + 1]]  # a piped table folds long headers
    assert values[header.index("unfinished")] == str(row["unfinished"])
