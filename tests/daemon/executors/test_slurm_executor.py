"""The Slurm executor against a fake Slurm (:mod:`tests.daemon.executors.fake_slurm`): jobs
held, moved, released, taken back, withdrawn and adopted, capacity, and clear errors (the real
Slurm is exercised in tests/slurm/)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.executors.base import Held, LaunchSpec, NotStarted, RunHandle
from daemon.executors.errors import (
    EndNotRecordedError,
    ExecutorError,
)
from daemon.executors.slurm import CommandResult, SlurmExecutor, Target
from daemon.executors.slurm.commands import slurm_time
from daemon.executors.slurm.queries import Token
from policies import Device
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.executors.fake_slurm import (
    RECORDED,
    T0,
    FakeSlurm,
    _Job,
    launch_spec,
    slurm_executor,
)


def test_a_planned_job_is_submitted_held_then_moved_in_place_or_resubmitted_then_released(
    tmp_path: Path,
) -> None:
    """Moved within its partition, the held job is updated in place (the same Slurm job);
    moved to another partition it is cancelled and submitted there afresh, so that it gets
    that partition's defaults (``DefMemPerGPU``, ``DefCpuPerGPU``), which Slurm sets only at
    submission (``tests/slurm/test_moves_on_slurm.py``)."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    start = T0 + timedelta(hours=1)
    held = executor.hold(launch_spec(tmp_path), start, "", T0)
    [(slurm_id, job)] = slurm.jobs.items()
    assert held.started_at is None
    assert (job.name, job.partition, job.start, job.node) == (
        "carbond-j1", "alpha", slurm_time(start), "n1",
    )  # fmt: skip
    assert (tmp_path / "logs" / "j1.out").exists()  # made for the job's user before sbatch

    later = start + timedelta(hours=1)
    moved = executor.hold(launch_spec(tmp_path, "qc", "qc/1"), later, held.token, T0)
    assert list(slurm.jobs) == [slurm_id]  # the same Slurm job
    assert (job.partition, job.start) == ("alpha", slurm_time(later))

    elsewhere = executor.hold(launch_spec(tmp_path, "pace", "pace/1"), later, moved.token, T0)
    [(new_id, new)] = [(i, j) for i, j in slurm.jobs.items() if i != slurm_id]
    assert job.state == "CANCELLED" and elsewhere.token != moved.token
    assert (new.name, new.partition, new.start, new.node) == (
        "carbond-j1", "beta", slurm_time(later), "n2",
    )  # fmt: skip

    handle = executor.release(launch_spec(tmp_path, "pace", "pace/1"), elsewhere.token, T0)
    assert list(slurm.jobs) == [slurm_id, new_id]  # released in place: the same partition
    assert new.state == "RUNNING" and handle.executor == "slurm"
    new.state, new.energy = "GONE", "812"
    [status] = executor.poll([handle], T0 + timedelta(minutes=1))
    assert status.succeeded and status.energy_j == 812.0
    assert status.started_at == datetime(2026, 12, 4, 21, 0, 1, tzinfo=UTC)


def test_on_a_node_with_gpus_of_two_types_a_job_asks_for_the_planned_type(
    tmp_path: Path,
) -> None:
    slurm = FakeSlurm()
    slurm.nodes = slurm.nodes.replace("Gres=gpu:t4:2", "Gres=gpu:a100:1(S:0),gpu:t4:1(S:1)")
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=slurm,
                             gpu_names={"qc": {"a100": "A100-80GB"}},
                             known_gpus=DEFAULT_GPU_CATALOG.names())  # fmt: skip
    assert executor.discover("qc") == [(0, "A100-80GB"), (1, "T4")]

    held = executor.hold(launch_spec(tmp_path, "qc", "qc/1"), T0 + timedelta(hours=1), "", T0)
    executor.release(launch_spec(tmp_path, "qc", "qc/0"), held.token, T0)

    [sbatch] = [c for c in slurm.calls if c[0] == "sbatch"]
    [update] = [c for c in slurm.calls if "update" in c]
    assert "--gres=gpu:t4:1" in sbatch  # not "gpu:1", which Slurm may meet with the A100
    assert "Gres=gpu:a100:1" in update  # moved to the A100: the request follows


def test_a_job_slurm_already_started_is_reported_not_moved(tmp_path: Path) -> None:
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    held = executor.hold(launch_spec(tmp_path), T0 + timedelta(minutes=5), "", T0)
    job = next(iter(slurm.jobs.values()))
    job.state, job.start = "RUNNING", "2026-12-04T21:05:00"
    again = executor.hold(launch_spec(tmp_path), T0 + timedelta(hours=2), held.token, T0)
    assert again.started_at == T0 + timedelta(minutes=5)
    assert executor.withdraw("j1", held.token, T0, uid=0) == Held(
        held.token, T0 + timedelta(minutes=5)
    )
    assert job.state == "RUNNING"  # never cancelled behind the owner's back


def test_a_held_job_gone_from_squeue_waits_for_its_end_in_sacct_before_anything_is_decided(
    tmp_path: Path,
) -> None:
    """sacct lags squeue (about 0.5 s; slurmdbd down: longer): a held job squeue shows ended
    but sacct has no end of yet was taken as started at once, and recorded as a run (of 0 s,
    its end read later) even when its owner had cancelled it pending. Now nothing is decided
    for up to a minute; then it is taken as started, as before."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    held = executor.hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    job = next(iter(slurm.jobs.values()))
    job.state = "CANCELLED"  # squeue has the cancel; sacct not yet
    slurm.dbd_down = True

    for at in (T0, T0 + timedelta(seconds=30)):
        with pytest.raises(EndNotRecordedError, match="sacct has no end of it yet"):
            executor.release(launch_spec(tmp_path), held.token, at)
        with pytest.raises(EndNotRecordedError):
            executor.hold(launch_spec(tmp_path), T0 + timedelta(hours=2), held.token, at)
        with pytest.raises(EndNotRecordedError):
            executor.withdraw("j1", held.token, at, uid=0)
    assert len(slurm.jobs) == 1  # nothing submitted again

    late = T0 + timedelta(seconds=61)  # bounded: then taken as started, as before
    taken = executor.hold(launch_spec(tmp_path), T0 + timedelta(hours=2), held.token, late)
    assert taken.started_at is not None and taken.ended is None


def test_withdraw_holds_then_cancels_and_finds_an_unrecorded_submission_by_name(
    tmp_path: Path,
) -> None:
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    executor.hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0)  # token lost in a crash
    assert executor.withdraw("j1", "", T0, uid=0) is None
    job = next(iter(slurm.jobs.values()))
    assert job.held and job.state == "CANCELLED"
    tools = [c[0] + (" " + c[1] if c[0] == "scontrol" else "") for c in slurm.calls[-4:]]
    assert tools == ["squeue", "scontrol hold", "squeue", "scancel"]  # still waiting once held
    assert "--user=0" in slurm.calls[-4]  # by name among its owner's jobs only


def test_a_released_job_left_pending_past_the_grace_is_taken_back_unstarted(
    tmp_path: Path,
) -> None:
    slurm = FakeSlurm()
    executor = slurm_executor(slurm, pending_grace_s=60)
    handle = executor.launch(launch_spec(tmp_path), T0)
    job = next(iter(slurm.jobs.values()))
    job.state, job.reason = "PENDING", "Resources"
    assert executor.poll([handle], T0 + timedelta(seconds=30)) == []
    [status] = executor.poll([handle], T0 + timedelta(seconds=90))
    assert isinstance(status, NotStarted)
    assert "pending in Slurm for 90 s (Resources)" in status.reason
    assert job.held and job.state == "CANCELLED"


def test_a_released_job_still_pending_at_its_deadline_is_taken_back_within_the_grace(
    tmp_path: Path,
) -> None:
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)  # pending_grace_s 300 s
    handle = replace(
        executor.launch(launch_spec(tmp_path), T0), deadline=T0 + timedelta(seconds=60)
    )
    job = next(iter(slurm.jobs.values()))
    job.state, job.reason = "PENDING", "Resources"  # another user's job fills the node
    assert executor.poll([handle], T0 + timedelta(seconds=59)) == []
    [status] = executor.poll([handle], T0 + timedelta(seconds=60))
    assert isinstance(status, NotStarted)  # the service expires it: it can never start late
    assert status.reason == (
        "never started: pending in Slurm for 60 s (Resources), past its deadline "
        "2026-12-04T21:01:00+00:00"
    )
    assert job.held and job.state == "CANCELLED"

    running = replace(executor.launch(launch_spec(tmp_path), T0), deadline=T0)  # started in time
    assert executor.poll([running], T0 + timedelta(seconds=60)) == []  # runs to its end


def test_without_slurmdbd_a_job_past_its_deadline_is_still_taken_back(tmp_path: Path) -> None:
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    done = executor.launch(launch_spec(tmp_path), T0)
    next(iter(slurm.jobs.values())).state = "COMPLETED"  # ended: its end is sacct's
    late = replace(executor.launch(replace(launch_spec(tmp_path), job_id="j2"), T0),
                   deadline=T0 + timedelta(seconds=60))  # fmt: skip
    pending = slurm.jobs[Token.decode("j2", late.token).slurm_id]
    pending.state, pending.reason = "PENDING", "Resources"

    slurm.dbd_down = True
    [status] = executor.poll([done, late], T0 + timedelta(seconds=60))

    assert isinstance(status, NotStarted) and status.job_id == "j2"  # never starts late
    assert pending.held and pending.state == "CANCELLED"
    slurm.dbd_down = False  # the ended job's end is read once slurmdbd answers again
    [ended] = executor.poll([done], T0 + timedelta(seconds=61))
    assert ended.succeeded


def test_adopt_keeps_running_jobs_recovers_ended_ones_and_finds_unrecorded_ones(
    tmp_path: Path,
) -> None:
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    running = executor.launch(launch_spec(tmp_path), T0)
    ended = executor.launch(LaunchSpec("j2", ("true",), 0, 0, (1,), tmp_path, region="qc"), T0)
    slurm.jobs[ended.token.split('"')[3]].state = "GONE"
    lost = RunHandle("j3", "slurm", "", T0, uid=0)
    slurm.jobs["999"] = _Job("carbond-j3", "alpha", state="RUNNING")
    never = RunHandle("j4", "slurm", "", T0, uid=0)
    adopted = executor.adopt([running, ended, lost, never], T0 + timedelta(minutes=1))
    by_id = {a.job_id: a for a in adopted}
    assert by_id["j1"] == running
    assert by_id["j2"].succeeded  # type: ignore[union-attr]  # an ExitStatus here
    assert isinstance(by_id["j3"], RunHandle) and '"999"' in by_id["j3"].token
    assert isinstance(by_id["j4"], NotStarted)


def test_capacity_marks_down_nodes_and_gpus_others_hold(tmp_path: Path) -> None:
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    slurm.nodes = (RECORDED / "scontrol_nodes_drained.txt").read_text()  # n1 drained
    # root's --gres=gpu:1 (no end: an hour assumed) and another user's --gpus=1, both on n2
    slurm.running_beta = (RECORDED / "squeue_running_beta.txt").read_text().splitlines()[0]
    devices = [
        Device(f"{region}/{i}", region, "Z", DEFAULT_GPU_CATALOG.get(gpu))
        for region, gpu in (("qc", "T4"), ("pace", "L4"))
        for i in range(2)
    ]
    marked = {d.device_id: d for d in executor.available(devices, T0)}
    assert not marked["qc/0"].available and not marked["qc/1"].available
    assert marked["pace/0"].busy_until == T0 + timedelta(hours=1)
    assert marked["pace/1"].busy_until is None and marked["pace/1"].available
    slurm.running_beta = (RECORDED / "squeue_running_beta.txt").read_text()
    marked = {d.device_id: d for d in executor.available(devices, T0)}
    ends = datetime(2026, 12, 6, 16, 37, 44, tzinfo=UTC)  # the --gpus=1 job's time limit
    assert marked["pace/0"].busy_until == marked["pace/1"].busy_until == ends
    slurm.down = True
    assert not any(d.available for d in executor.available(devices, T0))


def test_sbatch_refusal_and_unknown_gres_types_are_clear_errors(tmp_path: Path) -> None:
    def refuse(argv: Sequence[str], **_: object) -> CommandResult:
        if argv[0] == "sbatch":
            return CommandResult(1, "", "sbatch: error: invalid partition specified: alpha\n")
        return FakeSlurm()(argv)

    executor = SlurmExecutor({"qc": Target("alpha")}, runner=refuse, known_gpus=["T4"])
    with pytest.raises(ExecutorError, match=r"j1: sbatch refused it: .*invalid partition"):
        executor.launch(launch_spec(tmp_path), T0)
    strange = SlurmExecutor({"qc": Target("alpha")}, runner=FakeSlurm(), known_gpus=["A100"])
    with pytest.raises(ExecutorError, match=r"GRES type 't4'.*gpu_types"):
        strange.discover("qc")
