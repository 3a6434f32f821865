"""The queue's user-side commands, ``submit``, ``jobs`` and ``cancel``, are each their own
module (``jobs_cmds.py`` held all three in 404 lines; module sizes: tests/test_module_sizes.py)."""

from __future__ import annotations

import argparse
import importlib

import pytest


@pytest.mark.parametrize("command", ["submit", "jobs", "cancel"])
def test_each_queue_command_is_registered_by_its_own_module(command: str) -> None:
    module = importlib.import_module(f"daemon.cli.{command}_cmd")
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    module.register(subparsers)
    assert list(subparsers.choices) == [command]
