"""Daemon-test fixtures: log events go to stderr, so stdout holds only command output."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from daemon.ledger import Ledger


@pytest.fixture(autouse=True)
def _logs_to_stderr() -> Iterator[None]:
    structlog.reset_defaults()  # whatever a test outside tests/daemon configured
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    yield
    structlog.reset_defaults()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A fresh ledger in ``tmp_path``, closed after the test."""
    with Ledger.open(tmp_path / "ledger.db") as opened:
        yield opened


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """umask 022 for the test, as a login shell has (file modes the test asserts depend on it)."""
    old = os.umask(0o022)
    yield
    os.umask(old)
