"""Daemon-test fixtures: log events go to stderr, so stdout holds only command output."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _logs_to_stderr() -> Iterator[None]:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    yield
    structlog.reset_defaults()
