"""A held job Slurm started on its own before carbond released it (its owner moved its start,
``scontrol update StartTime=now``; its begin came between two rounds) is answered started by
the watching between plans, running or already gone from squeue: until 2026-12-07 it stayed
``planned`` in carbond until its planned start's release round."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from daemon.executors.base import Held, RunHandle
from tests.daemon.executors.fake_slurm import T0, FakeSlurm, launch_spec, slurm_executor


# GONE: no longer in squeue, COMPLETED in sacct
@pytest.mark.parametrize("state", ["RUNNING", "GONE"])
def test_a_held_job_slurm_started_is_answered_started_with_its_start(
    tmp_path: Path, state: str
) -> None:
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    held = executor.hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    handle = RunHandle("j1", "slurm", held.token, T0, uid=0)
    assert executor.ended_held([handle], T0 + timedelta(minutes=1)) == {}  # still held
    [job] = slurm.jobs.values()
    job.state, job.reason, job.node = state, "None", "n1"
    job.start = job.ran[0] if job.ran else slurm.ran[0]

    answered = executor.ended_held([handle], T0 + timedelta(minutes=2))

    assert answered == {"j1": Held(held.token, started_at=answered["j1"].started_at)}
    started = answered["j1"].started_at
    assert started is not None and started.isoformat() == "2026-12-04T21:00:01+00:00"
