"""``carbond replay``'s and ``carbond tune``'s options: a bad one is refused with one line
(exit 2, or 1 for an output that cannot be written) before any input is read or replay
run; durations, policy lists and grids parsed."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from daemon.cli import main, replay_cmd
from daemon.replay.errors import ReplayInputError
from daemon.replay.inputs import (
    MAX_GRID_SETTINGS,
    load_setup,
    parse_duration_s,
    parse_grid,
    parse_policies,
)
from tests.daemon.replay.conftest import replay_inputs
from tests.daemon.replay.replay_argv import input_options


def test_bad_duration_options_are_rejected(
    trace: Path, cluster_file: Path, intensity_files: list[Path]
) -> None:
    inputs = replace(replay_inputs(trace, cluster_file, intensity_files), truth_factor=0.0)
    with pytest.raises(ReplayInputError, match="--truth-factor"):
        load_setup(inputs, 0.0)


@pytest.mark.parametrize(
    ("argv_tail", "message"),
    [
        (["--policy", "no-such-policy"], "unknown policy"),
        (["--policy", "carbon-window:herd=1"], "unknown parameter"),
        (["--slack", "soon"], "--slack: not a duration: 'soon'"),
        (["--slack", "0,4h,"], "--slack: not a duration: ''"),
        (["--slack", "4h,240m"], "--slack: '240m' is a slack given before"),
        (["--start", "yesterday"], "not a time"),
        # the option named, before any input is read (until 2026-12-07 "unknown forecaster
        # 'nosuch'" alone, once the intensity files were read)
        (["--forecaster", "nosuch"], "--forecaster nosuch: unknown forecaster 'nosuch'"),
        # inf is more than 0: "--days must be > 0" (until 2026-12-07) did not say what was wrong
        (["--days", "inf"], "--days must be > 0 and finite, got inf"),
        (["--days", "nan"], "--days must be > 0 and finite, got nan"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    trace: Path, cluster_file: Path, intensity_files: list[Path], argv_tail: list[str],
    message: str, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    argv = ["replay", *input_options(trace, cluster_file, intensity_files), "--days", "0.1"]
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
     (["home_only=true,false,true"], "'home_only=true,false,true': True given twice"),
     # an empty value was dropped without a word (a setting fewer than the operator typed)
     (["min_saving=0.1,,0.3"], "--grid 'min_saving=0.1,,0.3': an empty value"),
     (["min_saving=0.1,"], "--grid 'min_saving=0.1,': an empty value")],
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
    argv = ["tune", *input_options(trace, cluster_file, intensity_files), "--days", "0.5",
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
    argv = ["tune", *input_options(missing, cluster_file, intensity_files), "--days", "0.5",
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
    argv = [*input_options(trace, cluster_file, intensity_files), "--days", "0.1"]
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
    argv = [command, *input_options(trace, cluster_file, intensity_files), "--days", "0.1"]
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
    argv = [
        *input_options(trace, cluster_file, intensity_files),
        "--days",
        "0.1",
        "--model",
        "llama-1b",
    ]
    assert main(["replay", *argv, "--policy", policy]) == 2
    assert main(["tune", *argv, "--policy", name, "--grid", grid]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and err.count(message) == 2
    assert err.count(f"carbond: error: --policy {policy}: ") == 1  # replay's
    assert err.count(f"carbond: error: --grid {grid}: ") == 1  # tune's names what it was given


def test_an_out_that_is_a_file_says_it_is_not_a_directory(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """``replay --out results.csv`` (an existing file) said "cannot write: File exists"."""
    monkeypatch.setattr(replay_cmd, "Replays", None)  # no replay may run first
    target = tmp_path / "results.csv"
    target.write_text("kept\n")
    argv = ["replay", *input_options(trace, cluster_file, intensity_files), "--days", "0.1"]
    assert main([*argv, "--out", str(target)]) == 1
    assert capsys.readouterr().err == f"carbond: error: {target}: cannot write: Not a directory\n"
    assert target.read_text() == "kept\n"


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
    argv = ["tune", *input_options(trace, cluster_file, intensity_files), "--days", "0.5"]
    for item in grid:
        argv += ["--grid", item]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"carbond: error: {message}") and err.count("\n") == 1
    assert "--policy" not in err
    assert main([*argv[:-2], "--policy", "carbon-window:nokey=1"]) == 2
    assert capsys.readouterr().err.startswith("carbond: error: --policy carbon-window:nokey=1: ")


def test_out_names_each_slacks_folder_in_fixed_notation(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path
) -> None:
    """``--out``'s folders were named ``slack_{hours:g}h``: ``--slack 0.1s`` (any duration is
    taken) wrote ``slack_2.77778e-05h``, a slack of a million hours (refused unless the
    intensity covers its deadlines) ``slack_1e+06h``, and 1234567 h and 1234568 h shared
    ``slack_1.23457e+06h``, the second slack's files over the first's. The hours are now
    written in fixed notation, every digit that tells two slacks apart; the ordinary names are
    as before (``slack_0h``, ``slack_0.5h``, ``slack_4h``)."""
    out = tmp_path / "out"
    argv = ["replay", *input_options(trace, cluster_file, intensity_files), "--days", "0.05",
            "--policy", "run-now", "--workers", "1", "--slack", "0,30m,0.1s",
            "--out", str(out), "--json"]  # fmt: skip
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "slack_0.00002777777777777778h", "slack_0.5h", "slack_0h"
    ]  # fmt: skip
    names = [replay_cmd._slack_folder(parse_duration_s(s)) for s in ("4h", "1000000h", "1234567h")]
    assert names == ["slack_4h", "slack_1000000h", "slack_1234567h"]
    assert replay_cmd._slack_folder(parse_duration_s("1234568h")) == "slack_1234568h"


def test_the_progress_label_writes_each_slack_as_its_out_folder_does(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The progress bar's label was ``slack {hours:g} h``: ``--slack 0.1s`` showed ``slack
    2.77778e-05 h`` beside a folder ``slack_0.00002777777777777778h``. Both write the hours
    with one helper now."""
    labels: list[str] = []
    drawn = replay_cmd.progress

    def recording(specs: object, label: str, setup: object) -> object:
        labels.append(label)
        return drawn(specs, label, setup)  # type: ignore[arg-type]  # passed through

    monkeypatch.setattr(replay_cmd, "progress", recording)
    out = tmp_path / "out"
    argv = ["replay", *input_options(trace, cluster_file, intensity_files), "--days", "0.05",
            "--policy", "run-now", "--workers", "1", "--slack", "0,30m,0.1s",
            "--out", str(out), "--json"]  # fmt: skip
    assert main(argv) == 0
    assert labels == ["slack 0 h", "slack 0.5 h", "slack 0.00002777777777777778 h"]
    folders = sorted(p.name.removeprefix("slack_").removesuffix("h") for p in out.iterdir())
    assert sorted(label.removeprefix("slack ").removesuffix(" h") for label in labels) == folders
