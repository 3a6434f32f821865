"""carbond's own Slurm job changed behind its back by its owner (``scontrol update
JobId=N Gres=gpu:t4:2``): the GPUs Slurm gave it count for capacity and for the GPU-hours it is
charged (the real cluster's side is in ``tests/slurm/test_capacity_on_slurm.py``)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.executors.base import NotStarted, RunHandle
from daemon.executors.errors import ExecutorError
from daemon.executors.slurm import SlurmExecutor, Target
from daemon.executors.slurm.queries import Token
from daemon.service.plan_round import _devices
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.executors.fake_slurm import T0, FakeSlurm, launch_spec, slurm_executor
from tests.daemon.executors.slurm_daemon import Dip, slurm_daemon

_ALLOC = "cpu=1,mem=100M,node=1,billing=1,gres/gpu={n}"


def _run(tmp_path: Path, gpus: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A one-GPU job released at once, seen running on ``gpus`` GPUs (squeue's row of the
    partition's running jobs), then ended: its outcome, and what was logged."""
    slurm = FakeSlurm()
    slurm.ran = ("2026-12-04T21:00:01", "2026-12-04T22:00:01")  # one hour
    daemon = slurm_daemon(tmp_path, slurm, Dip(T0))  # cleanest now: released at once
    line = {"id": "j8", "model": "llama-1b", "requests": 4, "command": ["true"],
            "deadline": (T0 + timedelta(hours=5)).isoformat()}  # fmt: skip
    (tmp_path / "queue.jsonl").write_text(json.dumps(line) + "\n")
    daemon.service.start(T0)
    daemon.service.tick(T0)
    [(slurm_id, job)] = slurm.jobs.items()
    assert job.state == "RUNNING" and daemon.ledger.job("j8").state == "running"
    slurm.running_alpha = f"{slurm_id}|root|n1|gres:gpu:t4:{gpus}|{_ALLOC.format(n=gpus)}|NONE\n"
    job.gpus = gpus  # and so its sacct rows' AllocTRES
    service, at = daemon.service, T0 + timedelta(minutes=1)
    with capture_logs() as logs:
        # the planner's devices, as a planning round sees them (the job's own GPU busy)
        runs, plan_s = daemon.ledger.active_runs(), service.settings.intervals.plan_s
        configured = service._memory.busy.devices(service.inventory, runs, at, plan_s)
        devices = _devices(service._capacity_aware, at, configured)
        daemon.service.tick(at)  # a planning round reads it too
        job.state = "GONE"  # it ended
        daemon.service.tick(T0 + timedelta(hours=1, minutes=1))
    assert daemon.ledger.job("j8").state == "succeeded"
    outcome = daemon.ledger.outcome("j8")
    assert outcome is not None
    daemon.close()
    free = [d.device_id for d in devices if d.busy_until is None or d.busy_until <= at]
    return outcome | {"free": free}, logs


def test_a_gpu_its_owner_added_to_a_running_carbond_job_is_busy_and_charged(
    tmp_path: Path,
) -> None:
    """The second GPU looked free to the planner (carbond counted its own job's GPUs from its
    plan) and the run was charged one GPU's embodied carbon; both now follow what Slurm gave
    the job, the change logged once."""
    plain, plain_logs = _run(tmp_path / "plain", 1)
    changed, logs = _run(tmp_path / "changed", 2)

    assert plain["free"] == ["qc/1"] and changed["free"] == []
    assert (plain["gpus"], changed["gpus"]) == (1, 2)
    assert changed["embodied_g"] == pytest.approx(2 * plain["embodied_g"])
    events = [(e["job_id"], e["field"], e["planned"], e["actual"])
              for e in logs if e["event"] == "slurm_job_changed_outside"]  # fmt: skip
    assert events == [("j8", "gres/gpu", 1, 2)]
    assert not [e for e in plain_logs if e["event"] == "slurm_job_changed_outside"]


def test_the_gpus_a_job_held_are_read_from_sacct_at_its_end_not_only_at_planning_rounds(
    tmp_path: Path,
) -> None:
    """A one-GPU job its owner re-GRESed to two that started and ended between planning
    rounds (or while carbond was down) was charged its planned GPU: what Slurm gave it was
    read only from a round's squeue. Its end now reads it from the sacct row the poll reads
    anyway (AllocTRES gres/gpu), for the executor that launched it and for a restarted one."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    handle = replace(executor.launch(launch_spec(tmp_path), T0), gpus=1)
    [job] = slurm.jobs.values()
    job.gpus, job.state = 2, "GONE"  # ran on two GPUs, ended: only sacct has it

    [status] = executor.poll([handle], T0 + timedelta(minutes=1))
    [again] = slurm_executor(slurm).poll([handle], T0 + timedelta(minutes=1))  # restarted

    assert status.gpus == again.gpus == 2
    assert (
        status.reason
        == again.reason
        == (
            "slurm COMPLETED; it held 2 GPUs, not the 1 planned (its Slurm job's GRES changed "
            "outside carbond)"
        )
    )
    job.gpus = 1
    [planned] = slurm_executor(slurm).poll([handle], T0 + timedelta(minutes=1))
    assert planned.gpus is None and planned.reason == "slurm COMPLETED"  # as planned


def test_a_job_taken_back_or_withdrawn_is_forgotten_by_the_gpus_followed(
    tmp_path: Path,
) -> None:
    """The planned GPUs of each Slurm job carbond submitted were forgotten only at its end:
    a job taken back (pending past pending_grace_s) or withdrawn (held, planned elsewhere)
    stayed in memory for as long as the daemon ran."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm, pending_grace_s=60)
    released = executor.launch(launch_spec(tmp_path), T0)
    held = executor.hold(
        replace(launch_spec(tmp_path), job_id="j2"), T0 + timedelta(hours=1), "", T0
    )
    slurm.jobs["100"].state, slurm.jobs["100"].reason = "PENDING", "Resources"

    [taken] = executor.poll([replace(released, gpus=1)], T0 + timedelta(seconds=90))
    assert executor.withdraw("j2", held.token, T0 + timedelta(seconds=90), uid=0) is None

    assert isinstance(taken, NotStarted)
    assert executor._own_gpus.planned == {} and executor._own_gpus.held == {}


def test_no_gpus_followed_outlive_a_held_job_slurm_ended_or_carbond_refused(
    tmp_path: Path,
) -> None:
    """The planned GPUs of a held job were forgotten only at a run's end, a take-back or a
    withdrawal: one Slurm ended unstarted (its owner's scancel), seen between plans or by a
    new plan, and one carbond cancelled refusing it (a root job when root's are no longer
    allowed: watched, or at its release) stayed in memory for as long as the daemon ran."""
    slurm = FakeSlurm()
    allowing = slurm_executor(slurm)
    later = T0 + timedelta(hours=1)
    held = {job_id: allowing.hold(replace(launch_spec(tmp_path), job_id=job_id), later, "", T0)
            for job_id in ("j1", "j2", "j3", "j4")}  # Slurm jobs 100..103  # fmt: skip
    for slurm_id in ("100", "101"):  # their owner cancels them while they wait
        slurm.jobs[slurm_id].state, slurm.jobs[slurm_id].unstarted = "CANCELLED", True
    refusing = SlurmExecutor({"qc": Target("alpha"), "pace": Target("beta")}, runner=slurm,
                             known_gpus=DEFAULT_GPU_CATALOG.names(),
                             allow_root_jobs=False)  # fmt: skip
    handles = [RunHandle(job_id, "slurm", h.token, T0, uid=0, gpus=1)
               for job_id, h in held.items()]  # fmt: skip
    refusing.adopt(handles, T0)  # a restarted daemon learns the plan from the ledger
    refusing.poll(handles, T0)
    assert len(refusing._own_gpus.planned) == 4
    at = T0 + timedelta(minutes=1)

    ended = refusing.ended_held([handles[0], handles[2]], at)  # j1 ended, j3 refused
    moved = refusing.hold(replace(launch_spec(tmp_path), job_id="j2"), later, held["j2"].token, at)
    with pytest.raises(ExecutorError, match="refusing to run a job as root"):
        refusing.release(replace(launch_spec(tmp_path), job_id="j4"), held["j4"].token, later)

    assert ended["j1"].reason == "slurm CANCELLED by uid 0" and ended["j3"].refused
    assert moved.ended is not None and not moved.ended.refused
    assert refusing._own_gpus.planned == {} and refusing._own_gpus.held == {}


def test_a_held_job_resubmitted_to_another_cluster_leaves_no_gpus_followed(
    tmp_path: Path,
) -> None:
    """A new plan that moves a held job to another cluster cancels it there and submits it
    afresh: the cancelled Slurm job's planned GPUs stayed followed beside the new one's."""
    slurm = FakeSlurm()
    executor = SlurmExecutor({"qc": Target("alpha"), "far": Target("beta", cluster="west")},
                             runner=slurm, known_gpus=DEFAULT_GPU_CATALOG.names())  # fmt: skip
    later = T0 + timedelta(hours=1)
    held = executor.hold(launch_spec(tmp_path), later, "", T0)  # Slurm job 100

    moved = executor.hold(
        launch_spec(tmp_path, region="far", device="far/0"), later, held.token, T0
    )

    assert slurm.jobs["100"].state == "CANCELLED"
    assert Token.decode("j1", moved.token) == Token("101", "west", "far")
    assert executor._own_gpus.planned == {("west", "101"): ("j1", 1)}


def test_a_held_job_s_start_moved_outside_carbond_is_logged_once_per_change(
    tmp_path: Path,
) -> None:
    """A held job whose start its owner moved (``scontrol update StartTime=``) was not
    logged; it is now, once per change, by the watching between plans; a start that is
    Slurm's estimate (the job waiting ``Resources`` past its begin) is no such change."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    held = executor.hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    handle = RunHandle("j1", "slurm", held.token, T0, uid=0)
    [job] = slurm.jobs.values()

    with capture_logs() as logs:
        for start, reason in (("2026-12-04T23:00:00", "BeginTime"),
                              ("2026-12-04T23:00:00", "BeginTime"),
                              ("2026-12-05T01:00:00", "None"),
                              ("2026-12-04T22:00:00", "BeginTime"),
                              ("2026-12-05T03:00:00", "Resources")):  # fmt: skip
            job.start, job.reason = start, reason
            assert executor.ended_held([handle], T0 + timedelta(minutes=1)) == {}

    moved = [(e["field"], e["planned"], e["actual"]) for e in logs
             if e["event"] == "slurm_job_changed_outside"]  # fmt: skip
    assert moved == [
        ("StartTime", "2026-12-04T22:00:00+00:00", "2026-12-04T23:00:00+00:00"),
        ("StartTime", "2026-12-04T22:00:00+00:00", "2026-12-05T01:00:00+00:00"),
    ]
