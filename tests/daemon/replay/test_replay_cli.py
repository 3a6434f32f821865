"""``carbond replay`` and ``carbond tune`` on small hand-made traces: their table, JSON and
files, the notes on stderr, the progress bar, and the tuning front."""

from __future__ import annotations

import csv
import json
import re
import shlex
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.cli import main, replay_cmd
from daemon.replay import inputs as inputs_module
from daemon.replay.inputs import (
    PolicySpec,
)
from daemon.reports.pareto import mark_front
from tests.daemon.replay.conftest import START
from tests.daemon.replay.replay_argv import input_options


def test_replay_cli_json_and_outputs(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    out = tmp_path / "out"
    argv = ["replay", *input_options(trace, cluster_file, intensity_files), "--days", "0.5",
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
    argv = ["replay", *input_options(trace, cluster_file, intensity_files), "--days", "0.5",
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
    argv = ["replay", *input_options(trace, cluster_file, intensity_files), "--days", "0.1",
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
    argv = ["replay", *input_options(trace, cluster_file, intensity_files), "--days", "0.1",
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
        assert all(re.fullmatch(r"[a-z]+:\d+(\.\d+)?%", share) for share in row[-1].split()), row


@pytest.mark.parametrize(
    ("share", "shown"),
    [(-0.0, "0.0%"), (0.0, "0.0%"), (-0.0003, "-0.03%"), (0.0004, "0.04%"), (-0.0006, "-0.1%"),
     (0.7438, "74.4%"), (0.99996, "99.996%"), (-1e-9, "0.0%"), (None, "-")],
)  # fmt: skip
def test_a_share_is_shown_as_report_shows_one(share: float | None, shown: str) -> None:
    """The replay and tune tables' shares, as ``carbond report`` shows its own: to one
    decimal, more where one would hide a share. Carbon-window's 37.94 g against the MIP's
    37.95 g (a gap of -0.03 %) read ``0.0%``; a share that is zero reads ``0.0%``, unsigned,
    and one within a millionth of zero (a sum's noise) too."""
    assert replay_cmd._pct(share) == shown


def test_a_small_region_share_is_not_shown_as_none() -> None:
    """The regions column in whole percents, more where a whole percent would hide a share:
    a region given 0.4 % of the jobs read ``ciso:0%``, one given 99.6 % ``qc:100%``."""
    assert replay_cmd._regions({"qc": 0.996, "ciso": 0.004}) == "qc:99.6% ciso:0.4%"
    assert replay_cmd._regions({"qc": 0.5, "ciso": 0.5, "pace": 0.0}) == "qc:50% ciso:50% pace:0%"


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
        argv = ["replay", *input_options(path, cluster_file, intensity_files), "--days", "0.5",
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
    argv = [command, *input_options(damaged, cluster_file, intensity_files), "--days", "0.25",
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
    argv = ["replay", *input_options(trace, cluster_file, [evil, intensity_files[1]]), "--days",
            "0.1", "--policy", "run-now", "--model", "llama-1b", "--requests-per-job", "64",
            "--tick", "300", "--json"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "EVIL\\x1b]0;owned\\x07\\x1b[31m: bad_row" in err and "\x1b" not in err


def test_tune_marks_the_pareto_front(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    argv = ["tune", *input_options(trace, cluster_file, intensity_files), "--days", "0.5",
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
    argv = ["tune", *input_options(trace, cluster_file, intensity_files), "--days", "0.5",
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
    argv = ["tune", *input_options(trace, cluster_file, intensity_files), "--days", "0.5",
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
    inputs = input_options(trace, cluster_file, intensity_files)
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


def test_replay_out_files_get_the_umasks_permissions(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path
) -> None:
    """``--out``'s jobs.csv came out 0600 (its temporary file's mode) whatever the umask, as
    ``export`` and ``report -o`` files did before them."""
    import os
    import stat

    out = tmp_path / "out"
    argv = ["replay", *input_options(trace, cluster_file, intensity_files), "--days", "0.1",
            "--policy", "run-now", "--workers", "1", "--out", str(out)]  # fmt: skip
    old = os.umask(0o022)
    try:
        assert main(argv) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((out / "slack_4h" / "jobs.csv").stat().st_mode) == 0o644


def test_the_replay_table_counts_the_unfinished_jobs_as_the_json_does(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    argv = ["replay", *input_options(trace, cluster_file, intensity_files),
            "--days", str(45 / 1440), "--slack", "0", "--policy", "run-now",
            "--requests-per-job", "64", "--model", "llama-1b", "--tick", "300",
            "--forecaster", "seasonal-24h"]  # fmt: skip
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
