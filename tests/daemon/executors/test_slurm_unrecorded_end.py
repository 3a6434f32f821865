"""A Slurm job's end read before slurmdbd has recorded all of it
(:func:`daemon.executors.slurm.ends.unrecorded`): its ended job row without an ``End`` or exit
code yet waits a poll or two, for at most the cut-short limit."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from structlog.testing import capture_logs

from daemon.executors.slurm.queries import Token
from tests.daemon.executors.fake_slurm import T0, FakeSlurm, launch_spec, slurm_executor

ONE_S = timedelta(seconds=1)  # FakeSlurm's jobs start 1 s after T0


def test_a_job_that_failed_at_once_waits_for_sacct_to_record_its_end_and_exit_code(
    tmp_path: Path,
) -> None:
    """sacct briefly showed a job that failed in under a second as ``FAILED`` with ``End``
    ``Unknown`` and exit code 0 (seen on the local cluster): carbond ended it at once at the
    poll's time, and recorded ``slurm FAILED; end unknown`` instead of its real exit code 126.
    Its end now waits for the next poll, which reads the End and 126 sacct recorded."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    handle = executor.launch(launch_spec(tmp_path), T0)
    job = slurm.jobs[Token.decode(handle.job_id, handle.token).slurm_id]
    job.state, job.job_end, job.ran = "FAILED", "Unknown", ("2026-12-04T21:00:01", "Unknown")

    first = executor.poll([handle], T0 + timedelta(seconds=10))
    job.exit, job.job_end, job.ran = "126:0", None, None  # recorded now
    [status] = executor.poll([handle], T0 + timedelta(seconds=20))

    assert first == []
    assert (status.exit_code, status.reason) == (126, "slurm FAILED")
    assert (status.started_at, status.finished_at, status.end_to_second) == (
        T0 + ONE_S, T0 + 5 * ONE_S, True,
    )  # fmt: skip


def test_a_job_whose_end_sacct_never_records_ends_after_the_cut_short_limit(
    tmp_path: Path,
) -> None:
    """A job whose ended job row keeps no End (nor, failed, an exit code) is not asked about
    for ever: after the cut-short limit (ten minutes) it ends as its rows say, at the first
    poll that found it ended, the reason saying what sacct never recorded; a job whose End
    sacct printed but cannot be read is not waited for (unknown for good)."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    handles = [executor.launch(replace(launch_spec(tmp_path), job_id=f"j{n}"), T0) for n in (1, 2)]
    jobs = [slurm.jobs[Token.decode(h.job_id, h.token).slurm_id] for h in handles]
    jobs[0].state, jobs[0].exit, jobs[0].job_end = "FAILED", "", "Unknown"
    jobs[0].ran = ("2026-12-04T21:00:01", "Unknown")
    jobs[1].state, jobs[1].job_end = "GONE", "yesterday"
    first = T0 + timedelta(minutes=1)

    with capture_logs() as logs:
        [unreadable] = executor.poll(handles, first)
        for m in (1, 5, 9):
            assert executor.poll(handles[:1], first + timedelta(minutes=m)) == []
        [late] = executor.poll(handles[:1], first + timedelta(minutes=10))

    assert (unreadable.job_id, unreadable.succeeded) == ("j2", True)
    assert (late.job_id, late.exit_code, late.finished_at, late.end_to_second) == (
        "j1", None, first, False,
    )  # fmt: skip
    assert late.reason == (
        "slurm FAILED; end unknown: taken as the first poll that found it ended; "
        "sacct recorded no End or ExitCode in 600 s"
    )
    given_up = [(e["job_id"], e["fields"]) for e in logs
                if e["event"] == "slurm_sacct_unrecorded_given_up"]  # fmt: skip
    assert given_up == [("j1", "End or ExitCode")]
