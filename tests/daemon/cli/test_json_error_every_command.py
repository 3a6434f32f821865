"""Every command that takes ``--json`` (found from :func:`daemon.cli.build_parser`, so a new one
must join the table), run once with an input that fails, prints one JSON document on stdout,
``{"error": ...}``, whose exit code is the process's and whose message is the stderr line's.
None needs a running daemon or the network: a config file that is not there, a state dir
without a ledger, an unknown job, name or zone, a bad option."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemon.cli import build_parser, main

Argv = Callable[[Path], list[str]]  # the command line, given an empty folder to use


def _no_config(command: str) -> Argv:
    return lambda tmp: [*command.split(), "--config", str(tmp / "none.toml")]


def _replay_inputs(tmp: Path) -> list[str]:
    missing = str(tmp / "none")  # not read: the option at fault is refused first
    return ["--jobs", missing, "--cluster", missing, "--intensity", missing,
            "--start", "2023-06-05"]  # fmt: skip


# command: (its failing command line, kind, exit code)
_FAILURES: dict[str, tuple[Argv, str, int]] = {
    "gpus": (_no_config("gpus"), "config", 2),
    "paper": (_no_config("paper"), "config", 2),
    "prune-logs": (lambda tmp: [*_no_config("prune-logs")(tmp), "--days", "1"], "config", 2),
    "estimate": (lambda tmp: ["estimate", "--model", "llama-1b", "--gpu", "NOPE", "--zone", "DE"],
                 "unknown_gpu", 2),
    "advise": (lambda tmp: ["advise", "--model", "llama-1b", "--zones", "nowhere"],
               "unknown_zone", 2),
    "intensity": (lambda tmp: ["intensity", "--zone", "XX", "--cache-dir", str(tmp)],
                  "unknown_zone", 2),
    "forecast backtest": (lambda tmp: ["forecast", "backtest", "--trace", str(tmp / "none.csv"),
                                       "--zone", "DE"], "trace_format", 2),
    "submit": (lambda tmp: ["submit", "--state-dir", str(tmp), "--model", "llama-1b"],
               "invalid_line", 2),  # no command given
    "jobs": (lambda tmp: ["jobs", "--state-dir", str(tmp)], "missing_ledger", 2),
    "status": (lambda tmp: ["status", "j1", "--state-dir", str(tmp)], "missing_ledger", 2),
    "report": (lambda tmp: ["report", "--state-dir", str(tmp)], "missing_ledger", 2),
    "export": (lambda tmp: ["export", "jobs", str(tmp / "out.csv"), "--state-dir", str(tmp)],
               "missing_ledger", 2),
    "backup": (lambda tmp: ["backup", str(tmp / "out.db"), "--state-dir", str(tmp)],
               "missing_ledger", 2),
    "cancel": (lambda tmp: ["cancel", "nope", "--state-dir", str(tmp)], "unknown_job", 2),
    # a failed check is doctor's report ({"ok": false, ...}, exit 1), not an error: what
    # doctor refuses is its command line
    "doctor": (lambda tmp: ["doctor", "--bogus"], "usage", 2),
    "demo": (lambda tmp: ["demo", "--policy", "nope", "--state-dir", str(tmp / "demo")],
             "unknown_policy", 2),
    "replay": (lambda tmp: ["replay", *_replay_inputs(tmp), "--days", "0"], "replay_input", 2),
    "tune": (lambda tmp: ["tune", *_replay_inputs(tmp), "--policy", "run-now,oracle"],
             "replay_input", 2),
}  # fmt: skip


def _json_commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> Iterator[str]:
    """The commands under ``parser`` that take ``--json``, as typed (``forecast backtest``)."""
    for action in parser._actions:  # argparse keeps its subcommands nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _json_commands(sub, (*words, name))
    if any("--json" in action.option_strings for action in parser._actions):
        yield " ".join(words)


def test_the_table_is_every_command_that_takes_json() -> None:
    assert sorted(_json_commands(build_parser())) == sorted(_FAILURES)


@pytest.mark.parametrize("command", sorted(_FAILURES))
def test_a_failing_json_command_prints_one_error_document(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, kind, exit_code = _FAILURES[command]
    try:
        code = main([*argv(tmp_path), "--json"])
    except SystemExit as refused:  # argparse's refusal, after its own stderr lines
        code = refused.code
    out, err = capsys.readouterr()
    document = json.loads(out)  # one document, nothing before or after it
    assert list(document) == ["error"]
    error = document["error"]
    assert (code, error["exit_code"], error["kind"]) == (exit_code, exit_code, kind), error
    if kind == "usage":  # argparse's usage line and error come first on stderr
        assert err.endswith(f"carbond {command}: error: {error['message']}\n")
    else:
        assert err == f"carbond: error: {error['message']}\n"
