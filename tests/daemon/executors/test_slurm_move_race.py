"""A held job moved where carbond must submit it afresh (another partition, cluster or GRES
name: :meth:`SlurmExecutor._move`) is taken back with ``scontrol hold`` before ``scancel``:
Slurm may start it between carbond's look (``squeue``: still ``PENDING``) and its cancel, and
a run it started is followed, not killed and submitted again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from daemon.executors.base import Held
from daemon.executors.slurm.queries import Token
from tests.daemon.executors.fake_slurm import (
    T0,
    FakeSlurm,
    StartsAfterLook,
    launch_spec,
    slurm_executor,
)

_PLANNED = T0 + timedelta(hours=1)
_STARTED = T0 + timedelta(seconds=1)  # the fake's start of a run (its ``ran``)


def test_a_held_job_moved_to_another_partition_is_held_before_it_is_cancelled(
    tmp_path: Path,
) -> None:
    """The resubmit cancelled the waiting job with ``scancel`` alone, so Slurm could start it
    in between; it is now held first, then cancelled, and submitted in its new partition."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    held = executor.hold(launch_spec(tmp_path), _PLANNED, "", T0)

    moved = executor.hold(launch_spec(tmp_path, "pace", "pace/0"), _PLANNED, held.token, T0)

    old, new = slurm.jobs.values()
    assert old.held and old.state == "CANCELLED"
    assert new.partition == "beta" and new.state == "PENDING"
    assert Token.decode("j1", moved.token).slurm_id == "101"


def test_a_held_job_slurm_starts_as_a_new_plan_moves_it_elsewhere_is_reported_started(
    tmp_path: Path,
) -> None:
    """A held job a new plan moves to another partition, which Slurm starts at its planned
    time between carbond's look and its cancel: that run was killed and the job submitted
    again in the new partition. It is now answered started where it runs (its token, squeue's
    start), left running, no second job submitted."""
    slurm = StartsAfterLook()
    executor = slurm_executor(slurm)
    held = executor.hold(launch_spec(tmp_path), _PLANNED, "", T0)
    slurm.armed = True

    again = executor.hold(launch_spec(tmp_path, "pace", "pace/0"), _PLANNED, held.token, _PLANNED)

    assert again == Held(held.token, _STARTED)
    [job] = slurm.jobs.values()
    assert job.state == "RUNNING" and job.partition == "alpha" and not job.held


def test_a_held_job_slurm_starts_as_it_is_released_elsewhere_is_followed_where_it_runs(
    tmp_path: Path,
) -> None:
    """The same race when the job is released into another partition: its run is followed
    (its token and start), not cancelled and submitted there afresh."""
    slurm = StartsAfterLook()
    executor = slurm_executor(slurm)
    held = executor.hold(launch_spec(tmp_path), _PLANNED, "", T0)
    slurm.armed = True

    handle = executor.release(launch_spec(tmp_path, "pace", "pace/0"), held.token, _PLANNED)

    assert (handle.token, handle.started_at) == (held.token, _STARTED)
    [job] = slurm.jobs.values()
    assert job.state == "RUNNING" and not job.held
