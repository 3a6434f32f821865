"""Watching Slurm jobs (:mod:`daemon.executors.slurm.watching`) when one job's squeue row
cannot be read (cut short, a time that is no time): nothing is decided on that job while it
lasts and it is named once; every other job (and the GPUs of other users' running jobs) is
still followed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.executors.errors import ExecutorUnavailableError
from daemon.executors.slurm.queries import Token
from policies import Device
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.executors.fake_slurm import (
    RECORDED,
    T0,
    FakeSlurm,
    launch_spec,
    slurm_executor,
)


def test_one_cut_short_or_unreadably_timed_squeue_row_affects_that_job_only(
    tmp_path: Path,
) -> None:
    """A squeue row with the wrong number of fields, or a time that is no time, failed the
    parse of the whole answer (``executor_poll_failed``: squeue: expected 7 fields), so no job
    of the cluster was seen to end, nor a pending one taken back. Now each is named once
    while it lasts (``slurm_squeue_unreadable``): a job whose row is cut short is unknown this
    poll (not ended, not taken back, sacct not asked); one whose time cannot be read is
    followed by its state; the others end as Slurm recorded them."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm, pending_grace_s=0.0)
    handles = [
        executor.launch(replace(launch_spec(tmp_path), job_id=f"j{n}"), T0) for n in (1, 2, 3)
    ]
    jobs = [slurm.jobs[Token.decode(h.job_id, h.token).slurm_id] for h in handles]
    jobs[0].state, jobs[0].reason, jobs[0].queue_cut = "PENDING", "Resources", True  # overdue
    jobs[1].start = "2026-12-04T2x"
    jobs[2].state = "GONE"
    now = T0 + timedelta(minutes=1)

    with capture_logs() as logs:
        slurm.calls.clear()
        [end] = executor.poll(handles, now)
        assert executor.poll(handles[:2], now + timedelta(minutes=1)) == []  # still cut short
        asked = [c for c in slurm.calls if c[0] == "sacct"]
        jobs[0].queue_cut = False
        [taken] = executor.poll(handles[:2], now + timedelta(minutes=2))

    assert (end.job_id, end.succeeded, end.reason) == ("j3", True, "slurm COMPLETED")
    assert [c[-1] for c in asked] == [f"--jobs={Token.decode('j3', handles[2].token).slurm_id}"]
    assert (taken.job_id, jobs[0].state) == ("j1", "CANCELLED")  # read again: taken back
    named = [e for e in logs if e["event"] == "slurm_squeue_unreadable"]
    ids = [Token.decode(h.job_id, h.token).slurm_id for h in handles]
    assert [e["slurm_id"] for e in named] == ids[:2]  # once each
    assert named[0]["fields"][0].startswith("row of 2 '|'-separated fields, not 7")
    assert named[1]["fields"] == ["StartTime '2026-12-04T2x'"]


def test_a_held_job_whose_squeue_row_is_cut_short_is_not_taken_as_started(
    tmp_path: Path,
) -> None:
    """A held job's squeue row cut short failed its move or withdrawal as if Slurm had refused
    it; read as a row of no known state it would be taken as started by Slurm (its withdrawal
    skipped: it would then start at its planned time). Now nothing is decided on it: the step
    waits for a later round (:class:`ExecutorUnavailableError`), the job left held."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    held = executor.hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    job = slurm.jobs[Token.decode("j1", held.token).slurm_id]
    job.queue_cut = True

    for step in (
        lambda: executor.hold(launch_spec(tmp_path), T0 + timedelta(hours=2), held.token, T0),
        lambda: executor.release(launch_spec(tmp_path), held.token, T0),
        lambda: executor.withdraw("j1", held.token, T0, uid=0),
    ):
        with pytest.raises(ExecutorUnavailableError, match="squeue printed its row cut short"):
            step()
    assert (job.state, job.held, len(slurm.jobs)) == ("PENDING", False, 1)
    job.queue_cut = False
    assert executor.withdraw("j1", held.token, T0, uid=0) is None
    assert job.state == "CANCELLED"


def test_one_unreadable_running_row_counts_only_that_job_s_gpus(tmp_path: Path) -> None:
    """Another user's running job whose squeue row could not be read made every GPU of the
    cluster unavailable (``slurm_unreachable``: squeue: expected 6 fields). Now that job's
    GPUs alone are not counted (named once, ``slurm_running_unreadable``); the others' are."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    first = (RECORDED / "squeue_running_beta.txt").read_text().splitlines()[0]
    slurm.running_beta = first + "\n91|carbond-slurm-other|n2|N/A|cpu=1\n"
    devices = [Device(f"pace/{i}", "pace", "Z", DEFAULT_GPU_CATALOG.get("L4")) for i in (0, 1)]

    with capture_logs() as logs:
        marked = {m: executor.available(devices, T0 + timedelta(minutes=m)) for m in (0, 1)}

    for m, pace in marked.items():  # root's job (no end: an hour on) counted; the cut one not
        assert all(d.available for d in pace)
        assert [d.busy_until for d in pace] == [T0 + timedelta(hours=1, minutes=m), None]
    named = [e for e in logs if e["event"] == "slurm_running_unreadable"]
    assert [(e["slurm_id"], e["fields"][0][:39]) for e in named] == [
        ("91", "row of 5 '|'-separated fields, not 6: '")
    ]
    assert not [e for e in logs if e["event"] == "slurm_unreachable"]
