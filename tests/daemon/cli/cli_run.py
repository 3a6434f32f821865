"""``carbond`` run in-process through the real parser, for the command tests (``run_cli``)."""

from __future__ import annotations

import pytest

from daemon.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``carbond ARGV`` in-process: its exit code, stdout and stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
