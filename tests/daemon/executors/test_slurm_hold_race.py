"""Slurm starts a job carbond is about to stop between carbond's look (``squeue``: still
``PENDING``) and its ``scontrol hold``: Slurm 22.05 holds a running job too (exit 0, it keeps
running; checked on the local cluster, ``tests/slurm/test_queries_on_slurm.py``), so a hold
that succeeds does not prove the job has not started; only its row after the hold does."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.executors.base import Held, RunHandle
from daemon.executors.errors import ExecutorError
from daemon.executors.held import HeldJobs
from daemon.executors.slurm import SlurmExecutor, Target
from daemon.ledger import Ledger
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.executors.fake_slurm import (
    T0,
    FakeSlurm,
    StartsAfterLook,
    launch_spec,
    slurm_executor,
)
from tests.daemon.executors.slurm_daemon import Dip, slurm_daemon
from tests.daemon.helpers import job_request


def _refusing(slurm: FakeSlurm) -> SlurmExecutor:
    """A restarted executor on ``slurm`` that no longer allows root's jobs."""
    return SlurmExecutor({"qc": Target("alpha")}, runner=slurm,
                         known_gpus=DEFAULT_GPU_CATALOG.names(), allow_root_jobs=False)  # fmt: skip


def test_a_release_refused_holds_the_job_before_it_cancels_it(tmp_path: Path) -> None:
    """A root job held before ``allow_root_jobs`` was turned off, released at its planned
    start (its ``BeginTime`` come: Slurm may start it any moment): carbond cancelled it with
    ``scancel`` alone, so Slurm could start it as root in between; it is now held first."""
    slurm = FakeSlurm()
    held = slurm_executor(slurm).hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    refusing = _refusing(slurm)

    with pytest.raises(ExecutorError, match=r"as root; its held Slurm job 100 is cancelled$"):
        refusing.release(launch_spec(tmp_path), held.token, T0 + timedelta(hours=1))

    [job] = slurm.jobs.values()
    assert job.held and job.state == "CANCELLED"


def test_a_release_refused_where_slurm_started_the_job_first_has_its_run_recorded(
    tmp_path: Path,
) -> None:
    """A root job held by a daemon that allowed root's jobs, released by one that refuses
    them at its planned start, which Slurm starts between carbond's look and its hold: the
    release failed ('... cancelled after it started'), so the job failed at once with no run
    recorded, the seconds it ran as root and their energy never read from sacct. It is now
    cancelled running and answered started (its token, squeue's start); the poll reads its
    end from sacct (times and energy), failed with the refusal's words."""
    slurm = StartsAfterLook()
    held = slurm_executor(slurm).hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    refusing = _refusing(slurm)
    slurm.armed = True

    with capture_logs() as logs:
        handle = refusing.release(launch_spec(tmp_path), held.token, T0 + timedelta(hours=1))

    assert (handle.token, handle.started_at) == (held.token, T0 + timedelta(seconds=1))
    [job] = slurm.jobs.values()
    assert job.state == "CANCELLED"
    job.energy = "50"  # what the node's meter drew over the seconds it ran
    [end] = refusing.poll([handle], T0 + timedelta(hours=1, minutes=1))
    assert end.reason == (
        "launch failed: job j1: refusing to run a job as root; Slurm started its job 100 "
        "before carbond could hold it: cancelled after it started"
    )
    assert (end.energy_j, end.energy_method) == (50.0, "slurm-sacct")
    assert not end.cancelled_by_owner and end.exit_code is None
    [event] = [e for e in logs if e["event"] == "slurm_held_job_refused"]
    assert event["slurm_id"] == "100" and event["started"] is True


def test_a_job_slurm_starts_as_carbond_takes_it_back_is_left_running(tmp_path: Path) -> None:
    """A released job pending past ``pending_grace_s`` that Slurm starts right after the
    poll's ``squeue``: the hold succeeded, so carbond cancelled the running job and planned
    it again as ``never started``; it now sees it running after the hold and leaves it."""
    slurm = StartsAfterLook()
    executor = slurm_executor(slurm, pending_grace_s=60)
    handle = executor.launch(launch_spec(tmp_path), T0)
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
    slurm = StartsAfterLook()
    executor = slurm_executor(slurm)
    held = executor.hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
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
    slurm = StartsAfterLook()
    executor = slurm_executor(slurm, pending_grace_s=60)
    handle = executor.launch(launch_spec(tmp_path), T0)
    [job] = slurm.jobs.values()
    job.state, job.reason = "PENDING", "Resources"
    slurm.armed = True

    assert executor.poll([handle], T0 + timedelta(seconds=90)) == []
    assert job.state == "RUNNING" and not job.held
    assert [c[1] for c in slurm.calls if c[0] == "scontrol"][-2:] == ["hold", "release"]


def test_a_refused_root_job_slurm_starts_at_its_hold_has_its_run_recorded(
    tmp_path: Path,
) -> None:
    """A root job held by a daemon that allowed root's jobs, which Slurm starts as the
    restarted daemon (``allow_root_jobs = false``) holds it to cancel it: it was cancelled
    running but ended as if it never ran, with no outcome row, its brief run's time and
    energy never read from sacct. Its run is now recorded like any cancelled run: ``running``
    once carbond knows Slurm started it, then ended from sacct (its start, end and
    ``ConsumedEnergyRaw``), failed with the refusal's words."""
    slurm = StartsAfterLook()
    line = {"id": "j1", "model": "llama-1b", "requests": 4, "command": ["sleep", "60"],
            "deadline": (T0 + timedelta(hours=5)).isoformat()}  # fmt: skip
    (tmp_path / "queue.jsonl").write_text(json.dumps(line) + "\n")  # root's: tests run as root
    allowing = slurm_daemon(tmp_path, slurm, Dip(T0 + timedelta(hours=2)), allow_root=True)
    allowing.service.start(T0)
    allowing.service.tick(T0)
    [job] = slurm.jobs.values()
    assert allowing.ledger.job("j1").state == "planned" and job.state == "PENDING"
    allowing.close()

    restarted = slurm_daemon(tmp_path, slurm, Dip(T0 + timedelta(hours=2)), allow_root=False)
    service, ledger = restarted.service, restarted.ledger
    service.start(T0 + timedelta(minutes=1))
    slurm.armed = True  # Slurm starts it right after carbond's next look
    job.energy = "50"  # what the node's meter drew over the seconds it ran

    service.tick(T0 + timedelta(minutes=1))  # held (to be cancelled), then polled

    assert job.state == "CANCELLED"
    assert ledger.job("j1").state == "failed"
    assert ledger.transitions("j1")[-1].reason == (
        "launch failed: job j1: refusing to run a job as root; Slurm started its job 100 "
        "before carbond could hold it: cancelled after it started"
    )
    outcome = ledger.outcome("j1")
    assert outcome is not None
    assert (outcome["energy_method"], outcome["measured_energy_j"]) == ("slurm-sacct", 50.0)
    assert outcome["started_at"] == "2026-12-04T21:00:01+00:00"
    assert outcome["finished_at"] == "2026-12-04T21:00:05+00:00"
    restarted.close()


def test_a_refused_root_job_slurm_starts_at_its_hold_is_cancelled_running(
    tmp_path: Path,
) -> None:
    """A root job held by a daemon that allowed root's jobs, seen by one restarted with
    ``allow_root_jobs = false`` between plans: Slurm starts it right after carbond's look,
    before its hold. It was left running as root and followed as a normal run; root's jobs
    must not run, so it is cancelled anyway (``slurm_held_job_refused``, ``started`` true),
    recorded as the run it was, and its end, read by the poll, fails with the refusal's
    words saying it had started."""
    slurm = StartsAfterLook()
    held = slurm_executor(slurm).hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
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

        assert ledger.job("j1").state == "running"
        run = ledger.run("j1")
        assert run is not None and run.token == held.token
    [job] = slurm.jobs.values()
    assert job.state == "CANCELLED"
    handle = RunHandle("j1", "slurm", held.token, T0, uid=0)
    [end] = refusing.poll([handle], T0 + timedelta(minutes=2))
    assert end.reason == (
        "launch failed: job j1: refusing to run a job as root; Slurm started its job 100 "
        "before carbond could hold it: cancelled after it started"
    )
    assert not end.cancelled_by_owner  # carbond's scancel runs as root, the job's owner
    assert end.started_at is not None and end.exit_code is None
    [event] = [e for e in logs if e["event"] == "slurm_held_job_refused"]
    assert event["slurm_id"] == "100" and event["started"] is True


def test_a_refused_root_job_slurm_starts_as_a_new_plan_moves_it_is_cancelled_running(
    tmp_path: Path,
) -> None:
    """The same race when a new plan moves the job: the move failed (``cannot be held``) and
    the job ran on as root; it is now cancelled and reported started (its run recorded), its
    end, read by the poll, refused, saying so."""
    slurm = StartsAfterLook()
    held = slurm_executor(slurm).hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    refusing = _refusing(slurm)
    slurm.armed = True

    again = refusing.hold(launch_spec(tmp_path), T0 + timedelta(hours=2), held.token,
                          T0 + timedelta(minutes=1))  # fmt: skip

    assert again == Held(held.token, T0 + timedelta(seconds=1))  # its start in Slurm
    [job] = slurm.jobs.values()
    assert job.state == "CANCELLED"
    handle = RunHandle("j1", "slurm", held.token, T0, uid=0)
    [end] = refusing.poll([handle], T0 + timedelta(minutes=2))
    assert end.reason == (
        "launch failed: job j1: refusing to run a job as root; Slurm started its job 100 "
        "before carbond could hold it: cancelled after it started"
    )


@pytest.mark.parametrize("step", ["hold", "release", "watch"])
def test_a_refused_root_job_slurm_started_at_its_planned_start_before_a_restart_is_cancelled(
    tmp_path: Path, step: str
) -> None:
    """A root job held by a daemon that allowed root's jobs, which Slurm started on its own
    at its planned start while the daemon was down; the one restarted with
    ``allow_root_jobs = false`` hands it over again (its first planning round's hold, or the
    release of a start that has come), or watches it between plans: the job was reported
    started (``row.state not in WAITING`` is checked before the refusal) and ran on as root;
    the watching left it running until the next hold, release or withdrawal. It is now
    cancelled running and reported started at Slurm's start, its run recorded; its end, read
    by the poll from sacct with its energy, fails with the refusal's words."""
    slurm = FakeSlurm()
    held = slurm_executor(slurm).hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    [job] = slurm.jobs.values()
    job.state, job.reason, job.start = "RUNNING", "None", slurm.ran[0]  # its start came
    refusing = _refusing(slurm)
    now = T0 + timedelta(hours=1, minutes=1)

    with capture_logs() as logs:
        if step == "hold":
            again = refusing.hold(launch_spec(tmp_path), T0 + timedelta(hours=2), held.token, now)
            token, started = again.token, again.started_at
        elif step == "release":
            handle = refusing.release(launch_spec(tmp_path), held.token, now)
            token, started = handle.token, handle.started_at
        else:
            watched = RunHandle("j1", "slurm", held.token, T0, uid=0)
            [seen] = refusing.ended_held([watched], now).values()
            assert isinstance(seen, Held)
            token, started = seen.token, seen.started_at

    assert (token, started) == (held.token, T0 + timedelta(seconds=1))  # its start in Slurm
    assert job.state == "CANCELLED"
    job.energy = "50"
    [end] = refusing.poll([RunHandle("j1", "slurm", held.token, T0, uid=0)], now)
    assert end.reason == (
        "launch failed: job j1: refusing to run a job as root; Slurm started its job 100 at "
        "its planned start before carbond saw it: cancelled after it started"
    )
    assert (end.energy_j, end.energy_method) == (50.0, "slurm-sacct")
    assert not end.cancelled_by_owner
    [event] = [e for e in logs if e["event"] == "slurm_held_job_refused"]
    assert event["slurm_id"] == "100" and event["started"] is True


@pytest.mark.parametrize("raced", [False, True])
def test_a_refused_root_job_slurm_started_is_cancelled_when_withdrawn(
    tmp_path: Path, raced: bool
) -> None:
    """The held root job a restarted daemon refusing root's jobs withdraws (cancelled by its
    user, planned elsewhere) had been started by Slurm, before carbond's look (at its planned
    start while no daemon looked) or between that look and its hold: it was reported started
    and ran on as root. It is now cancelled running and reported started, its run recorded,
    its end failing with the refusal's words."""
    slurm = StartsAfterLook()
    held = slurm_executor(slurm).hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    [job] = slurm.jobs.values()
    if raced:
        slurm.armed = True
    else:
        job.state, job.reason, job.start = "RUNNING", "None", slurm.ran[0]
    refusing = _refusing(slurm)
    now = T0 + timedelta(hours=1, minutes=1)

    started = refusing.withdraw("j1", held.token, now, uid=0)

    assert started == Held(held.token, T0 + timedelta(seconds=1))
    assert job.state == "CANCELLED"
    [end] = refusing.poll([RunHandle("j1", "slurm", held.token, T0, uid=0)], now)
    when = "before carbond could hold it" if raced else "at its planned start before carbond saw it"
    assert end.reason == (
        f"launch failed: job j1: refusing to run a job as root; Slurm started its job 100 {when}: "
        "cancelled after it started"
    )
