"""Bad input that a command wraps in a plain ``UsageError`` is documented by what it is: a
state dir without a ledger, a zone nothing knows (they were ``{"kind": "bad_input"}`` with no
field), their messages and exit codes unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import main
from daemon.cli.error_json import error_document
from daemon.errors import UsageError
from daemon.replay.errors import ReplayInputError
from forecasts import FORECASTERS, NoSignalError, TraceFormatError, UnknownZoneError
from policies.errors import InvalidWorkloadError


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    error: dict[str, Any] = json.loads(out)["error"]
    assert err == f"carbond: error: {error['message']}\n" and error["exit_code"] == code
    return code, error


@pytest.mark.parametrize("command", [["status", "j1"], ["jobs"], ["backup", "out.db"]])
def test_a_state_dir_without_a_ledger_is_missing_ledger(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    code, error = _error(capsys, *command, "--json", "--state-dir", str(state_dir))
    ledger = state_dir / "ledger.db"
    assert (code, error["kind"], error["file"], error["state_dir"]) == (
        2, "missing_ledger", str(ledger), str(state_dir))  # fmt: skip
    assert error["message"] == (
        f"{ledger}: no ledger (has `carbond run` started with this state_dir?)"
    )


def test_a_ledger_path_that_is_not_a_file_is_missing_ledger_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ledger.db").mkdir()
    code, error = _error(capsys, "jobs", "--json", "--state-dir", str(tmp_path))
    assert (code, error["kind"]) == (2, "missing_ledger")
    assert error["message"] == f"{tmp_path / 'ledger.db'}: not a regular file, so not a ledger " \
        "(move it aside)"  # fmt: skip


def test_an_unknown_zone_under_no_signal_is_unknown_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, error = _error(capsys, "intensity", "--zone", "XX", "--json",
                         "--cache-dir", str(tmp_path))  # fmt: skip
    assert (code, error["kind"], error["zone"]) == (2, "unknown_zone", "XX")
    assert error["message"].startswith("XX: no intensity signal: ")
    assert "unknown zone 'XX'" in error["message"]


def _raised(error: BaseException, cause: BaseException) -> BaseException:
    """``error`` as ``raise error from cause`` leaves it."""
    error.__cause__ = cause
    return error


def test_a_usage_error_takes_the_nearest_input_kind_down_its_chain() -> None:
    zone = _raised(NoSignalError("XX: no intensity signal"), UnknownZoneError("XX"))
    body = error_document(_raised(UsageError("XX: no intensity signal"), zone), "m", 2)["error"]
    assert body == {"kind": "unknown_zone", "message": "m", "exit_code": 2, "zone": "XX"}


def test_a_usage_error_raised_from_no_input_error_stays_bad_input() -> None:
    body = error_document(_raised(UsageError("x"), OSError("disk")), "m", 2)["error"]
    assert (body["kind"], "cause" in body) == ("bad_input", True)
    assert body["cause"]["kind"] == "os"
    assert error_document(UsageError("x"), "m", 2)["error"] == {
        "kind": "bad_input", "message": "m", "exit_code": 2}  # fmt: skip


def test_a_workload_refused_under_a_flag_says_its_field() -> None:
    workload = InvalidWorkloadError("gpus must divide", field="gpus", value="3", allowed=None)
    body = error_document(_raised(UsageError("--gpus 3: gpus must divide"), workload), "m", 2)
    assert body["error"]["kind"] == "invalid_workload"
    assert (body["error"]["field"], body["error"]["value"]) == ("gpus", "3")


def test_an_unknown_forecaster_is_unknown_forecaster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # until 2026-12-07 {"kind": "bad_input"} with neither name nor the known ones
    code, error = _error(capsys, "forecast", "backtest", "--trace", str(tmp_path / "t.csv"),
                         "--zone", "XX", "--forecasters", "persistence,nope", "--json")  # fmt: skip
    assert (code, error["kind"], error["name"]) == (2, "unknown_forecaster", "nope")
    assert error["known"] == list(FORECASTERS)
    assert error["message"] == f"unknown forecaster 'nope' (known: {', '.join(FORECASTERS)})"


def _trace_error(line: int) -> TraceFormatError:
    return TraceFormatError("t.csv", line, "zone", "empty zone")


def test_a_cause_that_repeats_the_outer_fields_is_left_out() -> None:
    outer = _raised(ReplayInputError("bad", file="t.csv", line=2, field="zone"), _trace_error(2))
    body = error_document(outer, "m", 2)["error"]
    assert body == {"kind": "replay_input", "message": "m", "exit_code": 2,
                    "file": "t.csv", "line": 2, "field": "zone"}  # fmt: skip


def test_a_cause_that_adds_a_field_or_a_value_is_kept() -> None:
    other_line = _raised(ReplayInputError("bad", file="t.csv", line=5, field="zone"),
                         _trace_error(2))  # fmt: skip
    assert error_document(other_line, "m", 2)["error"]["cause"] == {
        "kind": "trace_format", "file": "t.csv", "line": 2, "field": "zone"}  # fmt: skip
    no_line = _raised(ReplayInputError("bad", file="t.csv"), _trace_error(2))
    assert error_document(no_line, "m", 2)["error"]["cause"]["line"] == 2


def test_a_left_out_cause_still_gives_its_own_cause() -> None:
    trace = _raised(_trace_error(2), OSError(2, "gone", "pv.csv"))
    outer = _raised(ReplayInputError("bad", file="t.csv", line=2, field="zone"), trace)
    body = error_document(outer, "m", 2)["error"]
    assert body["cause"] == {"kind": "os", "file": "pv.csv", "errno": "ENOENT"}
