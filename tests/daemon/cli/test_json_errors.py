"""Under ``--json`` a failure is one JSON document on stdout, ``{"error": {"kind", "message",
"exit_code", ...}}``, beside the unchanged ``carbond: error:`` line on stderr: a script piping
``carbond jobs --json`` into ``jq`` got nothing to parse when it failed."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import daemon.cli
from daemon.cli import main
from daemon.cli.error_json import KINDS, error_document
from daemon.errors import DaemonError
from daemon.queue.files import MissingStateDirError
from daemon.replay.errors import ReplayInputError
from daemon.sites.model import SiteConfigError
from forecasts import RateLimitedError, UnknownZoneError
from tests.daemon.cli.cli_run import run_cli


def _failed(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    """``carbond ARGV``, which must fail: its exit code, its error document and stderr,
    checked to say the same: one ``carbond: error:`` line (an invalid config's lines) whose
    text is the document's message."""
    code, out, err = run_cli(capsys, *argv)
    assert code != 0, out
    document = json.loads(out)  # one document, nothing else
    error = document["error"]
    assert err == f"carbond: error: {error['message']}\n"
    assert (list(document), error["exit_code"]) == (["error"], code)
    return code, error, err


def test_bad_input_is_kind_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, error, _ = _failed(
        capsys, "jobs", "--json", "--offset", "-1", "--state-dir", str(tmp_path)
    )
    assert (code, error["kind"]) == (2, "bad_input")
    assert error["message"] == "--offset must not be negative"


def test_no_ledger_is_kind_missing_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, error, _ = _failed(capsys, "jobs", "--json", "--state-dir", str(tmp_path))
    assert (code, error["kind"]) == (2, "missing_ledger")
    assert error["message"] == (
        f"{tmp_path / 'ledger.db'}: no ledger (has `carbond run` started with this state_dir?)"
    )
    assert (error["file"], error["state_dir"]) == (str(tmp_path / "ledger.db"), str(tmp_path))


def test_without_json_a_failure_is_the_error_line_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "jobs", "--state-dir", str(tmp_path))
    assert (code, out) == (2, "")
    assert err.startswith("carbond: error: ") and err.count("\n") == 1


def test_an_invalid_config_names_file_line_and_field_of_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "carbond.toml"
    config.write_text('state_dir = "/tmp"\ndefault_pue = 9\nlifetime_years = 0\n')
    code, error, err = _failed(capsys, "jobs", "--json", "--config", str(config))
    assert (code, error["kind"]) == (2, "config")
    assert err.startswith("carbond: error: invalid configuration:\n  ")  # as without --json
    assert [(p["file"], p["line"], p["field"]) for p in error["problems"]] == [
        (str(config), 2, "default_pue"), (str(config), 3, "lifetime_years")
    ]  # fmt: skip
    assert [f"  {p['problem']}" for p in error["problems"]] == err.splitlines()[1:]


def test_a_missing_config_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    _, error, _ = _failed(capsys, "gpus", "--json", "--config", str(missing))
    assert error["problems"] == [
        {"problem": f"{missing}: config file not found", "file": str(missing), "line": None,
         "field": None}
    ]  # fmt: skip


def test_an_unknown_job_carries_its_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, error, _ = _failed(capsys, "cancel", "nope", "--json", "--state-dir", str(tmp_path))
    assert (code, error["kind"], error["job_id"]) == (2, "unknown_job", "nope")


@pytest.mark.parametrize(
    ("option", "kind", "name"),
    [(("--gpu", "t5", "--model", "llama-1b"), "unknown_gpu", "t5"),
     (("--gpu", "t4", "--model", "nope"), "unknown_model", "nope")],
)  # fmt: skip
def test_an_unknown_catalog_name_carries_the_known_ones(
    capsys: pytest.CaptureFixture[str], option: tuple[str, ...], kind: str, name: str
) -> None:
    code, error, _ = _failed(capsys, "estimate", *option, "--zone", "CA-QC", "--json")
    assert (code, error["kind"], error["name"]) == (2, kind, name)
    assert "T4" in error["known"] if kind == "unknown_gpu" else "llama-3.2-1b" in error["known"]


def test_an_unknown_policy_carries_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, error, _ = _failed(capsys, "demo", "--policy", "nope", "--json")
    assert (code, error["kind"], error["name"]) == (2, "unknown_policy", "nope")
    assert "carbon-window" in error["known"]


def test_a_workload_flag_out_of_range_is_named_as_typed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ("estimate", "--model", "llama-1b", "--gpu", "t4", "--batch-size", "0", "--json")
    code, error, _ = _failed(capsys, *argv, "--zone", "CA-QC")
    assert (code, error["kind"]) == (2, "invalid_workload")
    assert (error["field"], error["value"], error["allowed"]) == ("--batch-size", "0",
                                                                  "1 to 1,000,000")  # fmt: skip


def test_a_bad_trace_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("a,b\n1,2\n")
    argv = ("forecast", "backtest", "--trace", str(trace), "--zone", "DE", "--json")
    code, error, _ = _failed(capsys, *argv)
    assert (code, error["kind"]) == (2, "trace_format")
    assert (error["file"], error["line"], error["field"]) == (str(trace), 1, None)


def test_a_runtime_failure_exits_1_as_kind_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("a,b\n1,2\n")  # never read: the plot's folder is checked first
    plot = trace / "plot.png"  # in a "folder" that is a file
    argv = ("forecast", "backtest", "--trace", str(trace), "--zone", "DE", "--plot", str(plot))
    code, error, _ = _failed(capsys, *argv, "--json")
    assert (code, error["kind"]) == (1, "daemon")
    assert error["message"] == f"{trace}: cannot write: Not a directory"


@pytest.mark.parametrize(
    ("error", "kind", "fields"),
    [(UnknownZoneError("XX"), "unknown_zone", {"zone": "XX"}),
     (SiteConfigError("no such file", region="r1", field="site.pv_csv"), "site_config",
      {"region": "r1", "field": "site.pv_csv", "reason": "no such file"}),
     (RateLimitedError("429", retry_after_s=30.0), "rate_limited", {"retry_after_s": 30.0}),
     (FileNotFoundError(2, "No such file or directory", "/x"), "os",
      {"file": "/x", "errno": "ENOENT"}),
     (MissingStateDirError("/s: no such state dir"), "missing_state_dir", {}),
     (ReplayInputError("bad", file="t.csv", line=3, field="x"), "replay_input",
      {"file": "t.csv", "line": 3, "field": "x"}),
     (DaemonError("x"), "daemon", {})],
)  # fmt: skip
def test_the_kinds_commands_here_do_not_reach_carry_their_fields(
    error: BaseException, kind: str, fields: dict[str, object]
) -> None:
    body = error_document(error, "m", 2)["error"]
    assert body == {"kind": kind, "message": "m", "exit_code": 2, **fields}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_names_an_error_class(name: str) -> None:
    """The kinds are looked up by the class's module and name: a renamed or moved error
    class would lose its kind without this."""
    module, _, qualname = name.rpartition(".")
    found = getattr(importlib.import_module(module), qualname)
    assert isinstance(found, type) and issubclass(found, BaseException)
    assert f"{found.__module__}.{found.__qualname__}" == name


@pytest.mark.parametrize(
    ("argv", "command", "message"),
    [(["jobs", "--json", "--bogus"], "jobs", "unrecognized arguments: --bogus"),
     (["forecast", "backtest", "--json", "--zone", "DE"], "forecast backtest",
      "the following arguments are required: --trace"),
     (["estimate", "--json", "--model", "llama-1b", "--gpu", "t4", "--batch-size", "x"],
      "estimate", "argument --batch-size: invalid int value: 'x'"),
     (["--json"], "", "the following arguments are required: COMMAND")],
)  # fmt: skip
def test_a_usage_error_under_json_is_kind_usage(
    capsys: pytest.CaptureFixture[str], argv: list[str], command: str, message: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    assert info.value.code == 2
    assert err.startswith("usage: carbond") and err.endswith(f": error: {message}\n")  # as ever
    error = json.loads(out)["error"]
    assert (error["kind"], error["message"], error["exit_code"]) == ("usage", message, 2)
    assert error["command"] == command
    assert (
        error["usage"] == err.split(f"carbond{' ' if command else ''}{command}: error:")[0].strip()
    )


@pytest.mark.parametrize(
    "argv",
    [["jobs", "--bogus"],  # no --json
     ["submit", "--modle", "llama-1b", "--", "serve", "--json"]],  # the job's own --json
)  # fmt: skip
def test_a_usage_error_without_json_prints_nothing_on_stdout(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit):
        main(argv)
    out, err = capsys.readouterr()
    assert out == "" and "error: unrecognized arguments" in err


def test_output_already_begun_gets_no_second_document(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command that wrote part of its JSON and then failed: appending an error document
    would make stdout two documents, one cut short; the error line and exit code say it."""

    def half_then_fail(args: argparse.Namespace) -> int:
        sys.stdout.write('[{"job_id": "a"},')
        raise DaemonError("the ledger went away")

    def parser() -> argparse.ArgumentParser:
        built = argparse.ArgumentParser(prog="carbond")
        built.add_argument("--json", action="store_true")
        built.set_defaults(func=half_then_fail)
        return built

    monkeypatch.setattr(daemon.cli, "build_parser", parser)
    code, out, err = run_cli(capsys, "--json")
    assert (code, out, err) == (1, '[{"job_id": "a"},', "carbond: error: the ledger went away\n")


def test_a_real_command_prints_its_error_document(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("carbond")
    done = subprocess.run(
        [str(exe), "status", "j1", "--json", "--state-dir", str(tmp_path / "none")],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    error = json.loads(done.stdout)["error"]
    assert (done.returncode, error["exit_code"], error["kind"]) == (2, 2, "missing_ledger")
    assert done.stderr == f"carbond: error: {error['message']}\n"
