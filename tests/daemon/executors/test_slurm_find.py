"""Finding a carbond job in Slurm by its name ``carbond-<id>`` (its Slurm id never recorded,
or its run token unreadable) when ``squeue`` prints a row of that name cut short."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.executors.base import RunHandle
from daemon.executors.errors import AnswerUnreadableError
from daemon.executors.slurm.queries import Token
from tests.daemon.executors.test_slurm_executor import T0, FakeSlurm, _executor, _spec


def test_a_job_found_by_name_whose_squeue_row_is_cut_short_is_looked_up_again_later(
    tmp_path: Path,
) -> None:
    """A cut-short squeue row of a job looked up by name counted as that job waiting or
    running in no known partition, so its region fell back to a guess: on a multi-region
    cluster adoption recorded the wrong region (``pace`` for a job of ``qc``). Nothing is
    decided on it now (:class:`AnswerUnreadableError`, asked again next round); once the row
    reads whole the job is found in its own region. A job cancelled by name is not taken as
    gone while its row is cut short, and the other jobs of the poll are still followed."""
    slurm = FakeSlurm()
    executor = _executor(slurm)
    executor.launch(_spec(tmp_path), T0)  # its token lost in a crash
    other = executor.launch(replace(_spec(tmp_path), job_id="j2"), T0)
    [job, job2] = slurm.jobs.values()
    tokenless = RunHandle("j1", "slurm", "", T0, uid=0)
    job.queue_cut = True

    with pytest.raises(AnswerUnreadableError, match="squeue printed a row of carbond-j1 cut"):
        executor.adopt([tokenless], T0 + timedelta(minutes=1))
    with pytest.raises(AnswerUnreadableError):
        executor.hold(_spec(tmp_path), T0 + timedelta(hours=1), "", T0 + timedelta(minutes=1))
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
