"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.slurm.cluster import REQUIRE_ENV, SlurmCluster, unavailable_reason
from tests.slurm.localcluster import Layout

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


@pytest.fixture(scope="session")
def _slurm_cluster_session() -> SlurmCluster:
    layout = Layout.from_env()
    reason = unavailable_reason(layout)
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return SlurmCluster(layout)


@pytest.fixture
def slurm_cluster(_slurm_cluster_session: SlurmCluster) -> Iterator[SlurmCluster]:
    """The local Slurm cluster (``make slurm-up``), clean before and after the test.

    Skipped, with the reason, when it is not up; failed instead under ``CARBOND_REQUIRE_SLURM=1``.
    See tests/slurm/cluster.py for what it offers.
    """
    _slurm_cluster_session.reset()
    yield _slurm_cluster_session
    _slurm_cluster_session.reset()
