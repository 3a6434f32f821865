"""Releasing a held Slurm job whose output files are gone (the real cluster's side is in
tests/slurm/test_logs_on_slurm.py)."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.executors.errors import ExecutorError
from tests.daemon.executors.test_slurm_executor import T0, FakeSlurm, _executor, _spec


def test_a_held_job_whose_log_dir_cannot_be_made_again_fails_with_its_slurm_job_cancelled(
    tmp_path: Path,
) -> None:
    """Release makes a held job's removed output files again; where it cannot (the log dir
    replaced by a file), the job fails naming why, and its held Slurm job is cancelled, not
    left to start at its planned time while carbond records it failed."""
    slurm = FakeSlurm()
    executor = _executor(slurm)
    held = executor.hold(_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    shutil.rmtree(tmp_path / "logs")
    (tmp_path / "logs").write_text("not a directory\n")

    with pytest.raises(ExecutorError, match=r"cannot prepare .*logs.* Slurm job 100 is cancel"):
        executor.release(_spec(tmp_path), held.token, T0)

    [job] = slurm.jobs.values()
    assert job.state == "CANCELLED" and job.start != "now"  # never released
