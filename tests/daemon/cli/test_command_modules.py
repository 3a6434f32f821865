"""The CLI's modules stay one concept each (STYLE.md 2): none grows past 400 lines, and the
queue's user-side commands, ``submit``, ``jobs`` and ``cancel``, are each their own module."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

import daemon.cli

CLI = Path(daemon.cli.__file__).parent
MAX_LINES = 400


def test_no_cli_module_is_past_400_lines() -> None:
    """``jobs_cmds.py`` held submit, jobs and cancel in 404 lines; it is three modules now."""
    long = {
        path.name: n
        for path in sorted(CLI.glob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split by concept: {long}"


@pytest.mark.parametrize("command", ["submit", "jobs", "cancel"])
def test_each_queue_command_is_registered_by_its_own_module(command: str) -> None:
    module = importlib.import_module(f"daemon.cli.{command}_cmd")
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    module.register(subparsers)
    assert list(subparsers.choices) == [command]
