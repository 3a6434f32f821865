"""A Slurm job that ran and that Slurm then requeued (an admin's ``scontrol requeue``) is
pending again; carbond's take-back says it ran (the real cluster's side is in
``tests/slurm/test_requeued_on_slurm.py``)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from structlog.testing import capture_logs

from daemon.executors.base import NotStarted, RunHandle
from daemon.executors.slurm import CommandResult
from daemon.executors.slurm.acct import parse_sacct
from daemon.executors.slurm.commands import SACCT_FIELDS
from daemon.executors.slurm.ends import ended, ran_before
from tests.daemon.executors.fake_slurm import RECORDED, T0, FakeSlurm, launch_spec, slurm_executor
from tests.daemon.executors.slurm_daemon import Dip, slurm_daemon


def test_the_recorded_sacct_of_every_run_tells_a_requeued_run_from_one_that_never_ran() -> None:
    """``sacct --duplicates`` of a job requeued 3 s after it started, then held and cancelled
    pending by root (recorded on the local cluster): its ``REQUEUED`` job row is the run;
    the pending record, no node assigned, is not one."""
    rows = parse_sacct((RECORDED / "sacct_requeued_every_run.txt").read_text())

    assert ran_before("9", rows) == (
        "ran from 2026-12-07T11:36:27+00:00 to 2026-12-07T11:36:31+00:00 on n1 (REQUEUED)"
    )
    assert ran_before("9", rows[2:]) is None  # the pending record alone: it never ran
    assert [r.gpus for r in rows] == [1, 1, None]  # AllocTRES: the run's GPU; none pending
    assert ran_before("3", rows) is None


def test_a_job_slurm_requeued_after_it_ran_is_taken_back_saying_it_ran(tmp_path: Path) -> None:
    """A released job that ran, then was requeued by an admin, waits pending again
    (``BeginTime``); after ``pending_grace_s`` carbond takes it back. It said ``never started:
    pending in Slurm ...``, hiding the run (and that its energy is not recorded); it now names
    the run, read from ``sacct --duplicates``. A job that never ran still says ``never
    started``, and so does one whose runs sacct cannot tell now (slurmdbd down)."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm, pending_grace_s=60)
    requeued, never, unknown = (executor.launch(launch_spec(tmp_path), T0) for _ in range(3))
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
    daemon = slurm_daemon(tmp_path, slurm, Dip(T0))  # cleanest now: released at once
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


def test_the_end_of_a_job_that_ran_twice_counts_the_energy_of_both_runs() -> None:
    """``sacct --duplicates`` of a job requeued 2 s after it started, then run again to its
    end (recorded on the local cluster): its outcome's energy was the last run's alone (603
    J, plain sacct shows no other); it is now both runs' (925 J), the reason saying so."""
    rows = parse_sacct((RECORDED / "sacct_requeued_ran_again.txt").read_text())
    handle = RunHandle("j10", "slurm", "", T0, uid=0)

    status = ended(handle, "10", rows, T0 + timedelta(hours=1))

    assert status is not None and status.exit_code == 0
    assert status.energy_j == 322 + 603
    assert status.started_at is not None and f"{status.started_at:%H:%M:%S}" == "11:36:40"
    assert status.reason == (
        "slurm COMPLETED; energy 925 J over its 2 runs: 603 J of the last, and of each Slurm "
        "requeued before (ran from 2026-12-07T11:36:37+00:00 to 2026-12-07T11:36:39+00:00 on "
        "n1 (REQUEUED): 322 J)"
    )
    assert status.earlier_runs_s == 2 + 1  # its first run's 2 s, plus sacct's whole second
    assert ended(handle, "10", rows[2:], T0 + timedelta(hours=1)) == replace(
        status, energy_j=603, reason="slurm COMPLETED", earlier_runs_s=0.0
    )  # one run: as before
    assert [r.gpus for r in rows] == [1, 1, 1, 1]  # AllocTRES: each run's one GPU


def test_a_job_slurm_requeued_and_ran_again_is_charged_both_runs_by_the_executor(
    tmp_path: Path,
) -> None:
    """The executor's poll asks sacct with ``--duplicates`` (one sacct per cluster, as
    before), so the run Slurm requeued (400 J) adds to the last run's (250 J)."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    handle = executor.launch(launch_spec(tmp_path), T0)
    [job] = slurm.jobs.values()
    job.requeued = (("2026-12-04T20:59:01", "2026-12-04T20:59:30"),)
    job.state, job.energy = "GONE", "250"  # ran again, completed, left squeue

    [status] = executor.poll([handle], T0 + timedelta(minutes=1))

    assert status.exit_code == 0 and status.energy_j == 650
    assert "energy 650 J over its 2 runs: 250 J of the last" in status.reason
    assert sum(call[0] == "sacct" for call in slurm.calls) == 1


def test_one_sacct_per_poll_reads_the_ends_and_the_earlier_runs_of_the_jobs_taken_back(
    tmp_path: Path,
) -> None:
    """Each take-back ran its own ``sacct --duplicates`` after the poll's ``sacct``; the
    poll's one query (``--duplicates``) now covers the jobs it takes back too."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm, pending_grace_s=60)
    handles = [executor.launch(launch_spec(tmp_path), T0) for _ in range(3)]
    for job in list(slurm.jobs.values())[:2]:  # requeued after they ran, pending again
        job.state, job.reason = "PENDING", "BeginTime"
        job.requeued = (("2026-12-04T21:00:01", "2026-12-04T21:00:30"),)
    slurm.jobs["102"].state = "GONE"  # the third ended
    calls = len(slurm.calls)

    ends = executor.poll(handles, T0 + timedelta(seconds=90))

    assert [type(e).__name__ for e in ends] == ["NotStarted", "NotStarted", "ExitStatus"]
    assert all(e.reason.startswith("requeued by Slurm after it ran") for e in ends[:2])
    assert [c for c in slurm.calls[calls:] if c[0] == "sacct"] == [
        ("sacct", "--noheader", "--parsable2", "--format=" + ",".join(SACCT_FIELDS),
         "--duplicates", "--jobs=100,101,102")
    ]  # fmt: skip


@dataclass
class _RanAgain(FakeSlurm):
    """Answers ``sacct`` with the recorded ``sacct -D`` of a job requeued and run again
    (``sacct_requeued_ran_again.txt``), as its Slurm job's, on the test's day; its first run
    made an hour long (``first_s``), at the fake meter's 150 W."""

    first_s: int = 3600

    def _sacct(self, argv: Sequence[str], opts: dict[str, str]) -> CommandResult:
        [slurm_id] = self.jobs
        text = (RECORDED / "sacct_requeued_ran_again.txt").read_text()
        text = re.sub(r"^10(?=[|.])", slurm_id, text, flags=re.MULTILINE)
        text = text.replace("2026-12-07T11:", "2026-12-04T22:")  # after its release at T0
        start = datetime(2026, 12, 4, 22, 36, 37) - timedelta(seconds=self.first_s)
        text = text.replace("|2026-12-04T22:36:37|", f"|{start:%Y-%m-%dT%H:%M:%S}|")
        return CommandResult(0, text.replace("||322", f"||{150 * (self.first_s + 2)}"), "")


def test_a_long_run_slurm_requeued_keeps_its_measured_energy_in_the_outcome(
    tmp_path: Path,
) -> None:
    """A job that ran an hour, was requeued and ran again for 4 s: its energy over both runs
    (540,300 J + 603 J) is far more than its T4 could draw in the last run's 4 s, so the
    plausibility check (on the last run's length only) set it aside for the estimate
    (``job_energy_implausible``), undoing the sum; it is now checked against both runs' time
    and kept, measured."""
    slurm = _RanAgain()
    daemon = slurm_daemon(tmp_path, slurm, Dip(T0))  # cleanest now: released at once
    line = {"id": "j9", "model": "llama-1b", "requests": 4, "command": ["true"],
            "deadline": (T0 + timedelta(hours=5)).isoformat()}  # fmt: skip
    (tmp_path / "queue.jsonl").write_text(json.dumps(line) + "\n")
    daemon.service.start(T0)
    daemon.service.tick(T0)
    [job] = slurm.jobs.values()
    job.state = "GONE"  # requeued, ran again, ended: only sacct has it
    with capture_logs() as logs:
        daemon.service.tick(T0 + timedelta(hours=2))

    outcome = daemon.ledger.outcome("j9")
    daemon.close()
    assert outcome is not None and outcome["energy_method"] == "slurm-sacct"
    assert outcome["measured_energy_j"] == outcome["energy_j"] == 150 * 3602 + 603
    assert outcome["duration_s"] == 4  # its times stay the last run's
    assert not [e for e in logs if e["event"] == "job_energy_implausible"]
