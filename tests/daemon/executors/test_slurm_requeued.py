"""A Slurm job that ran and that Slurm then requeued (an admin's ``scontrol requeue``) is
pending again; carbond's take-back says it ran (the real cluster's side is in
``tests/slurm/test_requeued_on_slurm.py``)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from daemon.executors.base import NotStarted
from daemon.executors.slurm.acct import parse_sacct
from daemon.executors.slurm.queries import ran_before
from tests.daemon.executors.test_slurm_executor import RECORDED, T0, FakeSlurm, _executor, _spec
from tests.daemon.executors.test_slurm_service import _daemon, _Dip


def test_the_recorded_sacct_of_every_run_tells_a_requeued_run_from_one_that_never_ran() -> None:
    """``sacct --duplicates`` of a job requeued 3 s after it started, then held and cancelled
    pending by root (recorded on the local cluster): its ``REQUEUED`` job row is the run;
    the pending record, no node assigned, is not one."""
    rows = parse_sacct((RECORDED / "sacct_requeued_every_run.txt").read_text())

    assert ran_before("2", rows) == (
        "ran from 2026-12-07T04:39:12+00:00 to 2026-12-07T04:39:15+00:00 on n1 (REQUEUED)"
    )
    assert ran_before("2", rows[2:]) is None  # the pending record alone: it never ran
    assert ran_before("3", rows) is None


def test_a_job_slurm_requeued_after_it_ran_is_taken_back_saying_it_ran(tmp_path: Path) -> None:
    """A released job that ran, then was requeued by an admin, waits pending again
    (``BeginTime``); after ``pending_grace_s`` carbond takes it back. It said ``never started:
    pending in Slurm ...``, hiding the run (and that its energy is not recorded); it now names
    the run, read from ``sacct --duplicates``. A job that never ran still says ``never
    started``, and so does one whose runs sacct cannot tell now (slurmdbd down)."""
    slurm = FakeSlurm()
    executor = _executor(slurm, pending_grace_s=60)
    requeued, never, unknown = (executor.launch(_spec(tmp_path), T0) for _ in range(3))
    for job in slurm.jobs.values():
        job.state, job.reason = "PENDING", "BeginTime"
    slurm.jobs["100"].requeued = (("2026-12-04T21:00:01", "2026-12-04T21:00:30"),)

    [status] = executor.poll([requeued], T0 + timedelta(seconds=90))
    [not_run] = executor.poll([never], T0 + timedelta(seconds=90))
    slurm.dbd_down = True
    [unread] = executor.poll([unknown], T0 + timedelta(seconds=90))

    assert isinstance(status, NotStarted)  # planned again, as before
    assert status.reason == (
        "requeued by Slurm after it ran from 2026-12-04T21:00:01+00:00 to "
        "2026-12-04T21:00:30+00:00 on n1 (REQUEUED), then pending again (BeginTime) 90 s "
        "after its release; that run's energy is not recorded"
    )
    assert not_run.reason == unread.reason == "never started: pending in Slurm for 90 s (BeginTime)"
    assert all(job.held and job.state == "CANCELLED" for job in slurm.jobs.values())


def test_the_service_records_a_job_slurm_requeued_as_taken_back_before_it_ran_again(
    tmp_path: Path,
) -> None:
    """The service's transition read ``requeued: its executor took it back unstarted``
    whatever the executor's reason said; for a job Slurm requeued after it ran it now says
    ``before it ran again``, then the executor's reason. The job is planned again."""
    slurm = FakeSlurm()
    daemon = _daemon(tmp_path, slurm, _Dip(T0))  # cleanest now: released at once
    line = {"id": "j7", "model": "llama-1b", "requests": 4, "command": ["true"],
            "deadline": (T0 + timedelta(hours=5)).isoformat()}  # fmt: skip
    (tmp_path / "queue.jsonl").write_text(json.dumps(line) + "\n")
    daemon.service.start(T0)
    daemon.service.tick(T0)
    [job] = slurm.jobs.values()
    job.state, job.reason = "PENDING", "BeginTime"  # an admin requeued it after 29 s
    job.requeued = (("2026-12-04T21:00:01", "2026-12-04T21:00:30"),)
    daemon.service.tick(T0 + timedelta(minutes=6))  # past pending_grace_s (300 s)

    requeued = next(t for t in daemon.ledger.transitions("j7") if t.to_state == "queued"
                    and "took it back" in t.reason)  # fmt: skip
    assert requeued.reason.startswith(
        "requeued: its executor took it back before it ran again (requeued by Slurm after it "
        "ran from 2026-12-04T21:00:01+00:00"
    )
    assert job.held and job.state == "CANCELLED"
    daemon.close()
