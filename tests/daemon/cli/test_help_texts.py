"""Every sub-command's ``--help`` says what the command does, and every option says what it
takes; the job fields of ``carbond submit`` say their defaults (those the daemon applies)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from daemon.cli import build_parser, main
from daemon.cli.submit_cmd import _FIELDS
from daemon.queue.job_request import JobRequest
from daemon.queue.line import parse_line

ROOT = Path(__file__).resolve().parents[3]


def _subcommands(
    parser: argparse.ArgumentParser, path: str = "carbond"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{path} {name}", sub
                yield from _subcommands(sub, f"{path} {name}")


def _help_of(parser: argparse.ArgumentParser, flag: str) -> str:
    for action in parser._actions:
        if flag in action.option_strings:
            return action.help or ""
    raise AssertionError(f"no {flag}")


def test_every_subcommand_help_says_what_it_does() -> None:
    missing = [name for name, sub in _subcommands(build_parser()) if not sub.description]
    assert missing == []


def test_every_option_and_argument_has_a_help_text() -> None:
    """The ``COMMAND`` and ``forecast``'s ``SUBCOMMAND`` positionals included: they had none
    (``carbond --help`` showed a bare ``COMMAND``)."""
    parser = build_parser()
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, sub in [("carbond", parser), *_subcommands(parser)]
        for action in sub._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert missing == []


def test_a_command_positional_help_lists_its_choices() -> None:
    parser = build_parser()
    for name, sub in [("carbond", parser), *_subcommands(parser)]:
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert f"one of: {', '.join(action.choices)} (" in (action.help or ""), name


def _range_of(action: argparse.Action) -> str | None:
    """``LOW to HIGH`` that a bounded number option accepts, as its type says when it
    refuses a value (``'nan': a number from 0.01 to 720``); None for other options."""
    if not callable(action.type):
        return None
    try:
        action.type("nan")
    except argparse.ArgumentTypeError as exc:
        found = re.search(r" from (\S+) to (\S+)$", str(exc))
        return None if found is None else f"{found[1]} to {found[2]}"
    except (ValueError, TypeError):
        return None
    return None


def test_a_bounded_number_option_says_its_range() -> None:
    """``intensity --forecast-hours`` said ``<= 720`` though it refuses under 0.01 as
    docs/signals.md says (``0.01 to 720``); ``forecast backtest --horizon-hours`` and
    ``--every-hours`` and ``prune-logs --days`` said no range at all."""
    ranges = {
        f"{name} {action.option_strings[0]}": (found, action.help or "")
        for name, sub in _subcommands(build_parser())
        for action in sub._actions
        if action.option_strings and (found := _range_of(action)) is not None
    }
    assert "carbond intensity --forecast-hours" in ranges
    assert [option for option, (found, text) in ranges.items() if found not in text] == []
    signals = " ".join((ROOT / "docs" / "signals.md").read_text(encoding="utf-8").split())
    for option in ("--forecast-hours", "--horizon-hours", "--every-hours"):
        command = "intensity" if option == "--forecast-hours" else "forecast backtest"
        said = re.escape(ranges[f"carbond {command} {option}"][0])
        assert re.search(f"`{option}` [^`]{{0,20}}{said}", signals), option


def test_submit_field_help_states_the_daemons_default() -> None:
    """A bare line gets the defaults the daemon applies; ``--help`` must name the same ones."""
    bare = parse_line('{"model": "llama-3.2-1b", "command": ["true"]}', datetime.now(UTC))
    assert isinstance(bare, JobRequest)
    submit = dict(_subcommands(build_parser()))["carbond submit"]
    checked = 0
    for flag, field, _, _ in _FIELDS:
        if field in {"id", "name", "model", "params_b", "requests", "deadline"}:
            continue  # no fixed default: assigned, or one batch, or none
        default = getattr(bare, field)
        shown = f"{default:g}" if isinstance(default, int | float) else str(default)
        assert f"default {shown}" in _help_of(submit, flag), (flag, default)
        checked += 1
    assert checked == 8


def test_pue_help_says_a_zones_regions_set_it(tmp_path: Path) -> None:
    """``estimate --zone Z`` and ``advise --zones`` take the PUE of the configured regions in
    the zone (README, Configuration), but ``--pue``'s help said ``default: settings, 1.0``: an
    operator with ``pue = 1.3`` regions read that 1.0 was applied. The help names both rules,
    and the one that applied here shows in ``--json``."""
    config = tmp_path / "carbond.toml"
    config.write_text('[[regions]]\nname = "qc"\nzone = "CA-QC"\npue = 1.3\ngpus = ["T4"]\n')
    argv = ["--model", "llama-1b", "--config", str(config), "--json"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["advise", *argv, "--zones", "CA-QC", "--gpus", "T4"]) == 0
    assert json.loads(out.getvalue())["pue"] == {"CA-QC": 1.3}
    parsers = dict(_subcommands(build_parser()))
    for command in ("carbond estimate", "carbond advise"):
        text = _help_of(parsers[command], "--pue")
        assert "regions" in text and "default_pue" in text, (command, text)


def test_gpus_help_says_what_the_table_and_json_show(tmp_path: Path) -> None:
    """``carbond gpus --help`` listed FP16/FP32 TFLOPS among what it shows, though only
    ``--json`` has them, and ``--learned`` "per (model, GPU type)", though its table has a row
    per runtime and precision too. Each column the help names for the table is in it, and
    what it says only ``--json`` gives is in the JSON."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["gpus", "--state-dir", str(tmp_path)]) == 0
    header = next(line for line in out.getvalue().splitlines() if "| name" in line)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["gpus", "--state-dir", str(tmp_path), "--json"]) == 0
    row = json.loads(out.getvalue())[0]
    gpus = dict(_subcommands(build_parser()))["carbond gpus"]
    description = " ".join((gpus.description or "").split())
    table, _, json_only = description.partition("; --json adds ")
    assert "TFLOPS" not in table and "tdp_w" in header and "memory_gb" in header
    assert "fp16_tflops" not in header and {"fp16_tflops", "fp32_tflops"} <= set(row)
    assert "TFLOPS" in json_only
    assert "runtime, precision" in _help_of(gpus, "--learned")


def test_every_option_with_a_default_says_it() -> None:
    """``replay --power-model`` (and ``tune``'s) did not say it defaults to ``calibrated``."""
    silent = [
        f"{name} {action.option_strings[0]} (default {action.default!r})"
        for name, sub in _subcommands(build_parser())
        for action in sub._actions
        if action.option_strings
        and action.default not in (None, False, [], argparse.SUPPRESS)
        and "default" not in (action.help or "")
    ]
    assert silent == []


def _flat_help(command: str) -> str:
    return " ".join(dict(_subcommands(build_parser()))[command].format_help().split())


def test_report_output_reads_as_the_docs_write_it() -> None:
    """``report --help`` showed ``--output OUTPUT`` ("write to FILE"); the README and
    docs/daemon.md write ``--output FILE``."""
    for page in ("README.md", "docs/daemon.md"):
        assert "[--output FILE]" in (ROOT / page).read_text(encoding="utf-8"), page
    assert "--output FILE, -o FILE write to FILE" in _flat_help("carbond report")


def test_replay_help_says_what_a_ledgers_jobs_change() -> None:
    """docs/policies.md: with ``--jobs-format ledger`` the jobs keep their own model, workload
    and deadline (``--slack``, ``--model``, ``--requests-per-job`` do not apply) and ``--out
    DIR`` writes into DIR itself; the help said ``--out`` wrote one folder per slack."""
    docs = " ".join((ROOT / "docs" / "policies.md").read_text(encoding="utf-8").split())
    assert "`--out DIR` writes into DIR itself" in docs
    assert "`--slack`, `--model`, `--requests-per-job` and the other trace options" in docs
    text = _flat_help("carbond replay")
    assert "one folder slack_<H>h per slack (a ledger's jobs: in DIR itself)" in text
    assert "(--slack, --model and --requests-per-job do not apply)" in text


def test_advise_help_says_what_it_ranks_by() -> None:
    """``advise --help`` said it printed the lowest-carbon configuration in "gCO2e per
    request"; it ranks by operational + embodied grams per 1k output tokens, as its table's
    title and docs/accuracy.md say."""
    docs = " ".join((ROOT / "docs" / "accuracy.md").read_text(encoding="utf-8").split())
    assert "ranks by grams per 1k output tokens (operational + embodied)" in docs
    description = dict(_subcommands(build_parser()))["carbond advise"].description or ""
    assert "per request" not in description
    assert "lowest gCO2e per 1k output tokens (operational + embodied)" in description
