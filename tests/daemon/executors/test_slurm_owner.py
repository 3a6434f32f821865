"""Whose a Slurm job is: an owner Slurm cannot start jobs for is refused before ``sbatch``
(the real cluster's behaviour: ``tests/slurm/test_owner_on_slurm.py``)."""

from __future__ import annotations

import pwd
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.executors.errors import LaunchRefusedError
from tests.daemon.executors.test_slurm_executor import T0, FakeSlurm, _executor, _spec


def _uid_without_user() -> int:
    """A uid with no passwd entry on this host."""
    uid = 54321
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


def test_an_owner_with_no_passwd_entry_is_neither_launched_nor_held(tmp_path: Path) -> None:
    slurm = FakeSlurm()
    executor = _executor(slurm)
    uid = _uid_without_user()
    spec = replace(_spec(tmp_path), uid=uid, gid=uid)

    with pytest.raises(LaunchRefusedError, match=rf"uid {uid}, has no user on this host"):
        executor.launch(spec, T0)
    with pytest.raises(LaunchRefusedError, match="never start it"):
        executor.hold(spec, T0 + timedelta(hours=1), "", T0, new=True)

    assert slurm.jobs == {}  # no sbatch reached Slurm
