"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Where the third-party data lives: ``$CARBOND_SHARED_DATA`` or ``../shared/data``."""
    return Path(os.environ.get("CARBOND_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """The shared data folder; the test is skipped, with the reason, when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"third-party data not found at {path} (set CARBOND_SHARED_DATA)")
    return path
