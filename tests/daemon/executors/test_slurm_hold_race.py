"""Slurm starts a job carbond is about to stop between carbond's look (``squeue``: still
``PENDING``) and its ``scontrol hold``: Slurm 22.05 holds a running job too (exit 0, it keeps
running; checked on the local cluster, ``tests/slurm/test_queries_on_slurm.py``), so a hold
that succeeds does not prove the job has not started; only its row after the hold does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.executors.base import EndedUnstarted, Held
from daemon.executors.errors import ExecutorError
from daemon.executors.held import HeldJobs
from daemon.executors.slurm import CommandResult, SlurmExecutor, Target
from daemon.ledger import Ledger
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.executors.fake_slurm import T0, FakeSlurm, _executor, _spec
from tests.daemon.helpers import job_request


@dataclass
class _StartsAfterLook(FakeSlurm):
    """Once armed, Slurm starts the job right after its next ``squeue`` answer (its
    ``BeginTime`` came, or resources freed), before carbond's next command."""

    armed: bool = False

    def _squeue(self, argv: Sequence[str], opts: dict[str, str]) -> CommandResult:
        answer = super()._squeue(argv, opts)
        if self.armed and "Format" not in opts:
            self.armed = False
            for job in self.jobs.values():
                job.state, job.reason, job.start = "RUNNING", "None", self.ran[0]
        return answer


def _refusing(slurm: FakeSlurm) -> SlurmExecutor:
    """A restarted executor on ``slurm`` that no longer allows root's jobs."""
    return SlurmExecutor({"qc": Target("alpha")}, runner=slurm,
                         known_gpus=DEFAULT_GPU_CATALOG.names(), allow_root_jobs=False)  # fmt: skip


def test_a_release_refused_holds_the_job_before_it_cancels_it(tmp_path: Path) -> None:
    """A root job held before ``allow_root_jobs`` was turned off, released at its planned
    start (its ``BeginTime`` come: Slurm may start it any moment): carbond cancelled it with
    ``scancel`` alone, so Slurm could start it as root in between; it is now held first."""
    slurm = FakeSlurm()
    held = _executor(slurm).hold(_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    refusing = _refusing(slurm)

    with pytest.raises(ExecutorError, match=r"as root; its held Slurm job 100 is cancelled$"):
        refusing.release(_spec(tmp_path), held.token, T0 + timedelta(hours=1))

    [job] = slurm.jobs.values()
    assert job.held and job.state == "CANCELLED"


def test_a_release_refused_says_so_where_slurm_started_the_job_first(tmp_path: Path) -> None:
    """Slurm started the job between carbond's look and its hold: the failure said its held
    job was cancelled; it now says Slurm started it and it was cancelled after it started."""
    slurm = _StartsAfterLook()
    held = _executor(slurm).hold(_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    refusing = _refusing(slurm)
    slurm.armed = True

    with pytest.raises(ExecutorError) as raised:
        refusing.release(_spec(tmp_path), held.token, T0 + timedelta(hours=1))

    assert str(raised.value) == (
        "job j1: refusing to run a job as root; Slurm started its job 100 before carbond "
        "could hold it: cancelled after it started"
    )
    [job] = slurm.jobs.values()
    assert job.state == "CANCELLED"


def test_a_job_slurm_starts_as_carbond_takes_it_back_is_left_running(tmp_path: Path) -> None:
    """A released job pending past ``pending_grace_s`` that Slurm starts right after the
    poll's ``squeue``: the hold succeeded, so carbond cancelled the running job and planned
    it again as ``never started``; it now sees it running after the hold and leaves it."""
    slurm = _StartsAfterLook()
    executor = _executor(slurm, pending_grace_s=60)
    handle = executor.launch(_spec(tmp_path), T0)
    [job] = slurm.jobs.values()
    job.state, job.reason = "PENDING", "Resources"
    slurm.armed = True

    assert executor.poll([handle], T0 + timedelta(seconds=90)) == []
    assert job.state == "RUNNING"


def test_a_held_job_slurm_starts_as_carbond_withdraws_it_is_reported_started(
    tmp_path: Path,
) -> None:
    """A held job carbond withdraws (planned elsewhere) that Slurm starts at its planned time
    between carbond's look and its hold was cancelled running and reported withdrawn; it is
    now reported started (its token and start), as one Slurm started before the look."""
    slurm = _StartsAfterLook()
    executor = _executor(slurm)
    held = executor.hold(_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    slurm.armed = True

    started = executor.withdraw("j1", held.token, T0 + timedelta(hours=1), uid=0)

    assert isinstance(started, Held) and started.token == held.token
    assert started.started_at is not None and started.ended is None
    [job] = slurm.jobs.values()
    assert job.state == "RUNNING"


def test_a_job_found_started_after_carbond_s_hold_is_not_left_held(tmp_path: Path) -> None:
    """Slurm holds a job it started too (reason ``JobHeldAdmin`` while it runs, and held
    again were it requeued); one carbond finds started after its hold (a take-back, a
    withdrawal) had its hold left on; it is lifted (``scontrol release``)."""
    slurm = _StartsAfterLook()
    executor = _executor(slurm, pending_grace_s=60)
    handle = executor.launch(_spec(tmp_path), T0)
    [job] = slurm.jobs.values()
    job.state, job.reason = "PENDING", "Resources"
    slurm.armed = True

    assert executor.poll([handle], T0 + timedelta(seconds=90)) == []
    assert job.state == "RUNNING" and not job.held
    assert [c[1] for c in slurm.calls if c[0] == "scontrol"][-2:] == ["hold", "release"]


def test_a_refused_root_job_slurm_starts_at_its_hold_is_cancelled_running(
    tmp_path: Path,
) -> None:
    """A root job held by a daemon that allowed root's jobs, seen by one restarted with
    ``allow_root_jobs = false`` between plans: Slurm starts it right after carbond's look,
    before its hold. It was left running as root and followed as a normal run; root's jobs
    must not run, so it is cancelled anyway, and fails with the refusal's words saying it had
    started (``slurm_held_job_refused``, ``started`` true)."""
    slurm = _StartsAfterLook()
    held = _executor(slurm).hold(_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    refusing = _refusing(slurm)
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        with ledger.transaction():
            ledger.add_job(job_request("j1", T0), 0, 0, "queue.jsonl:1", T0)
            ledger.transition("j1", "planned", T0, "planned")
            ledger.add_run("j1", "slurm", ["qc/0"], [0], 60.0, T0)
            ledger.set_run_token("j1", held.token)
        slurm.armed = True

        with capture_logs() as logs:
            HeldJobs(ledger, {"slurm": refusing}).watch(T0 + timedelta(minutes=1))

        assert ledger.job("j1").state == "failed"
        assert ledger.transitions("j1")[-1].reason == (
            "launch failed: job j1: refusing to run a job as root; Slurm started its job 100 "
            "before carbond could hold it: cancelled after it started"
        )
    [job] = slurm.jobs.values()
    assert job.state == "CANCELLED"
    [event] = [e for e in logs if e["event"] == "slurm_held_job_refused"]
    assert event["slurm_id"] == "100" and event["started"] is True


def test_a_refused_root_job_slurm_starts_as_a_new_plan_moves_it_is_cancelled_running(
    tmp_path: Path,
) -> None:
    """The same race when a new plan moves the job: the move failed (``cannot be held``) and
    the job ran on as root; it is now cancelled and reported ended, refused, saying so."""
    slurm = _StartsAfterLook()
    held = _executor(slurm).hold(_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    refusing = _refusing(slurm)
    slurm.armed = True

    again = refusing.hold(_spec(tmp_path), T0 + timedelta(hours=2), held.token,
                          T0 + timedelta(minutes=1))  # fmt: skip

    assert again == Held(held.token, ended=EndedUnstarted(
        "job j1: refusing to run a job as root; Slurm started its job 100 before carbond "
        "could hold it: cancelled after it started", by_owner=False, refused=True))  # fmt: skip
    [job] = slurm.jobs.values()
    assert job.state == "CANCELLED"
