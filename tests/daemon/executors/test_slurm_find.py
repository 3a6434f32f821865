"""Finding a carbond job in Slurm by its name ``carbond-<id>`` (its Slurm id never recorded,
or its run token unreadable) when ``squeue`` prints a row of that name cut short."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.executors.base import ExitStatus, NotStarted, RunHandle
from daemon.executors.errors import AnswerUnreadableError
from daemon.executors.slurm.queries import Token
from tests.daemon.executors.fake_slurm import T0, FakeSlurm, _Job, launch_spec, slurm_executor


def test_a_job_found_by_name_whose_squeue_row_is_cut_short_is_looked_up_again_later(
    tmp_path: Path,
) -> None:
    """A cut-short squeue row of a job looked up by name counted as that job waiting or
    running in no known partition, so its region fell back to a guess: on a multi-region
    cluster adoption recorded the wrong region (``pace`` for a job of ``qc``). Nothing is
    decided on it now (:class:`AnswerUnreadableError`, asked again next round: adoption
    leaves it out, a hold raises it); once the row
    reads whole the job is found in its own region. A job cancelled by name is not taken as
    gone while its row is cut short, and the other jobs of the poll are still followed."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    executor.launch(launch_spec(tmp_path), T0)  # its token lost in a crash
    other = executor.launch(replace(launch_spec(tmp_path), job_id="j2"), T0)
    [job, job2] = slurm.jobs.values()
    tokenless = RunHandle("j1", "slurm", "", T0, uid=0)
    job.queue_cut = True

    assert executor.adopt([tokenless], T0 + timedelta(minutes=1)) == []  # asked again later
    with pytest.raises(AnswerUnreadableError, match="squeue printed a row of carbond-j1 cut"):
        executor.hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0 + timedelta(minutes=1))
    assert len(slurm.jobs) == 2  # nothing submitted again

    bad = RunHandle("j1", "slurm", '{"slurm_id": 7', T0, uid=0)
    job.queue_cut = False
    executor.cancel(bad, T0 + timedelta(minutes=2))  # found by name, cancelled
    job.state, job.queue_cut, job2.state = "COMPLETING", True, "GONE"
    [ended] = executor.poll([bad, other], T0 + timedelta(minutes=3))
    assert ended.job_id == "j2"  # j1's row cut short: not known to be gone

    job.state, job.queue_cut = "RUNNING", False
    [adopted] = executor.adopt([tokenless], T0 + timedelta(minutes=4))
    assert isinstance(adopted, RunHandle)
    assert Token.decode("j1", adopted.token).region == "qc"


def test_one_job_whose_lookup_by_name_is_undecided_does_not_hold_up_the_others_adoption(
    tmp_path: Path,
) -> None:
    """After a crash, the jobs without a Slurm id recorded are adopted by name together: one
    whose lookup could not be decided (its squeue row cut short, or sacct's answer about it)
    failed the whole adoption (``executor_adopt_failed``), so no other such job was adopted
    until that one's row read whole. That job alone is now left for the next call, named once
    (``slurm_adopt_deferred``); the others are adopted."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    for job_id in ("j1", "j2"):
        executor.launch(replace(launch_spec(tmp_path), job_id=job_id), T0)  # tokens lost in a crash
    [job, _] = slurm.jobs.values()
    job.queue_cut = True
    tokenless = [RunHandle(j, "slurm", "", T0, uid=0) for j in ("j1", "j2")]

    with capture_logs() as logs:
        for minutes in (1, 2):
            [other] = executor.adopt(tokenless, T0 + timedelta(minutes=minutes))
            assert isinstance(other, RunHandle) and other.job_id == "j2" and other.token
        job.queue_cut = False
        assert len(executor.adopt(tokenless, T0 + timedelta(minutes=3))) == 2

    [deferred] = [e for e in logs if e["event"] == "slurm_adopt_deferred"]
    assert deferred["job_id"] == "j1" and "cut short" in deferred["error"]


def test_a_job_found_by_name_in_a_partition_no_region_names_takes_the_first_region_listed(
    tmp_path: Path,
) -> None:
    """A job found by name in a partition no region names (moved there by an admin) is
    recorded in its cluster's first region listed; it took the last one (``pace``
    for a cluster whose regions are ``qc`` then ``pace``): the regions were gathered by
    cluster in a dict that kept each cluster's last."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    executor.launch(launch_spec(tmp_path), T0)  # its token lost in a crash
    [job] = slurm.jobs.values()
    job.state, job.partition = "RUNNING", "debug"
    [adopted] = executor.adopt([RunHandle("j1", "slurm", "", T0, uid=0)], T0 + timedelta(minutes=1))
    assert isinstance(adopted, RunHandle)
    assert Token.decode("j1", adopted.token).region == "qc"


def test_an_array_job_of_the_same_name_is_passed_over_when_a_job_is_found_by_name(
    tmp_path: Path,
) -> None:
    """A user's array job named ``carbond-<id>`` was taken for carbond's newest submission
    of that name: ``int`` reads a task's id ``101_3`` as 1013 (its ``_`` a digit separator),
    so adoption followed the user's task (and its region, exit code) instead of carbond's
    job ``100``, and a pending array's ``102_[4-5]`` raised ``ValueError``. Such a row is no
    submission of carbond's (sbatch answers it a count): carbond's own job is found, in
    squeue and, once it ended, in sacct; a name only an array job has is not found."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    executor.launch(launch_spec(tmp_path), T0)  # its token lost in a crash
    slurm.jobs["101_3"] = _Job("carbond-j1", "beta", state="RUNNING", reason="None", exit="1:0")
    slurm.jobs["102_[4-5]"] = _Job("carbond-j3", "beta")  # only a user's array job is named so
    tokenless = RunHandle("j1", "slurm", "", T0, uid=0)
    later = T0 + timedelta(minutes=1)

    [adopted] = executor.adopt([tokenless], later)
    assert isinstance(adopted, RunHandle)
    token = Token.decode("j1", adopted.token)
    assert (token.slurm_id, token.region) == ("100", "qc")

    slurm.jobs["100"].state = slurm.jobs["101_3"].state = "GONE"  # both ended: sacct's alone
    [ended] = executor.adopt([tokenless], later)
    assert isinstance(ended, ExitStatus) and ended.exit_code == 0  # carbond's, not the array's

    [never] = executor.adopt([RunHandle("j3", "slurm", "", T0, uid=0)], later)
    assert isinstance(never, NotStarted)
