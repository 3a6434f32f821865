"""Watching Slurm jobs (:mod:`daemon.executors.slurm.watching`) when one job's stored run
token cannot be read: that job is set aside and named once, or found by name among its
owner's Slurm jobs to be cancelled, moved or withdrawn; every other job is still followed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from structlog.testing import capture_logs

from daemon.executors.base import RunHandle
from daemon.executors.slurm.queries import Token
from tests.daemon.executors.fake_slurm import (
    T0,
    FakeSlurm,
    launch_spec,
    slurm_executor,
)


def test_one_unreadable_run_token_sets_that_job_aside_and_the_others_are_still_followed(
    tmp_path: Path,
) -> None:
    """A run token the ledger holds that is not a Slurm token (hand-edited, truncated) failed
    the whole poll (``job bad: unreadable slurm run token``, ``executor_poll_failed`` every
    round), so no other Slurm job was seen to end, and every held job's watch failed the
    same way. Now that job is named once (``slurm_run_token_unreadable``) and left as it is;
    the others are asked about and their ends read."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    good = executor.launch(launch_spec(tmp_path), T0)
    bad = RunHandle("bad", "slurm", '{"slurm_id": 7', T0, uid=0)
    held = executor.hold(replace(launch_spec(tmp_path), job_id="later"), T0 + timedelta(hours=1),
                         "", T0)  # fmt: skip
    later = RunHandle("later", "slurm", held.token, T0, uid=0)
    slurm.jobs[Token.decode("j1", good.token).slurm_id].state = "GONE"  # ended

    with capture_logs() as logs:
        [status] = executor.poll([bad, good], T0 + timedelta(minutes=1))
        assert executor.poll([bad], T0 + timedelta(minutes=2)) == []
        slurm.calls.clear()
        ended = executor.ended_held([bad, later], T0 + timedelta(minutes=3))

    assert (status.job_id, status.succeeded) == ("j1", True)
    assert ended == {}  # "later" is still pending in Slurm: asked, and not ended
    assert [c[0] for c in slurm.calls] == ["squeue"]
    named = [e for e in logs if e["event"] == "slurm_run_token_unreadable"]
    assert [(e["job_id"], e["field"]) for e in named] == [("bad", "token")]  # once


def test_a_job_with_an_unreadable_run_token_is_cancelled_by_name_and_ended_once_gone(
    tmp_path: Path,
) -> None:
    """``carbond cancel`` of a job whose run token cannot be read failed every reconcile
    (``job_cancel_failed``: unreadable slurm run token) and the job stayed running for good.
    Its Slurm job is now found by name among its owner's jobs and cancelled; the next poll
    that finds none of that name waiting or running ends the job, saying what is unknown."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    good = executor.launch(launch_spec(tmp_path), T0)
    other = executor.launch(replace(launch_spec(tmp_path), job_id="j2"), T0)
    job = slurm.jobs[Token.decode("j1", good.token).slurm_id]
    bad = replace(good, token='{"slurm_id": 7', uid=0)

    with capture_logs() as logs:
        executor.cancel(bad, T0 + timedelta(minutes=1))
    assert job.state == "CANCELLED"
    assert slurm.jobs[Token.decode("j2", other.token).slurm_id].state == "RUNNING"
    [named] = [e for e in logs if e["event"] == "slurm_job_cancelled_by_name"]
    assert (named["job_id"], named["slurm_id"]) == ("j1", Token.decode("j1", good.token).slurm_id)

    job.state = "COMPLETING"  # its processes still being killed
    assert executor.poll([bad, other], T0 + timedelta(minutes=2)) == []
    job.state = "GONE"
    [end] = executor.poll([bad, other], T0 + timedelta(minutes=3))
    assert (end.job_id, end.exit_code, end.energy_j) == ("j1", None, None)
    assert "run token is unreadable" in end.reason and "carbond-j1" in end.reason
    assert executor.poll([bad, other], T0 + timedelta(minutes=4)) == []  # ended once


def test_a_held_job_with_an_unreadable_run_token_is_withdrawn_and_moved_by_name(
    tmp_path: Path,
) -> None:
    """A held job whose run token cannot be read could be neither moved nor taken back
    (``job_hold_failed`` / ``job_withdraw_failed``: unreadable slurm run token, every
    round), so a cancelled or expired planned job stayed held in Slurm and would start there
    at its planned time. Its Slurm job is now found by name among its owner's jobs: a hold
    moves it and hands back a readable token; a withdrawal cancels it."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    spec = launch_spec(tmp_path)
    token = executor.hold(spec, T0 + timedelta(hours=1), "", T0).token
    job = slurm.jobs[Token.decode("j1", token).slurm_id]

    moved = executor.hold(spec, T0 + timedelta(hours=2), '{"slurm_id": 7', T0)
    assert moved.token == token and job.state == "PENDING"  # the same job, its token again
    assert executor.withdraw("j1", '{"slurm_id": 7', T0, uid=0) is None
    assert job.state == "CANCELLED" and len(slurm.jobs) == 1  # taken back, none submitted
