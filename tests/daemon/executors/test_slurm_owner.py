"""Whose a Slurm job is: an owner Slurm cannot start jobs for, or root when root's jobs are
not allowed, is refused before ``sbatch`` (the real cluster's behaviour:
``tests/slurm/test_owner_on_slurm.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.assemble import build_slurm_executor
from daemon.executors.base import EndedUnstarted, Held
from daemon.executors.errors import ExecutorError, LaunchRefusedError
from daemon.executors.held import HeldJobs
from daemon.executors.slurm import CommandResult
from daemon.executors.slurm.commands import Target, slurm_time
from daemon.executors.slurm.executor import SlurmExecutor
from daemon.ledger import Ledger
from daemon.settings import load_settings
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.executors.fake_slurm import T0, FakeSlurm, launch_spec, slurm_executor
from tests.daemon.helpers import job_request
from tests.daemon.users import uid_without_user


def test_an_owner_with_no_passwd_entry_is_neither_launched_nor_held(tmp_path: Path) -> None:
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    uid = uid_without_user()
    spec = replace(launch_spec(tmp_path), uid=uid, gid=uid)

    with pytest.raises(LaunchRefusedError, match=rf"uid {uid}, has no user on this host"):
        executor.launch(spec, T0)
    with pytest.raises(LaunchRefusedError, match="never start it"):
        executor.hold(spec, T0 + timedelta(hours=1), "", T0, new=True)

    assert slurm.jobs == {}  # no sbatch reached Slurm


def test_a_root_job_is_refused_before_sbatch_unless_root_jobs_are_allowed(tmp_path: Path) -> None:
    """``executors.local.allow_root_jobs = false`` refused root's jobs on the local executor
    only: a Slurm region submitted them, and Slurm ran them as root. ``[executors.slurm]
    allow_root_jobs = false`` (the executor the daemon builds from the TOML file, its Slurm
    commands real processes here) now refuses them, launched or held, with the local
    executor's words, before ``sbatch``; the default (true) still submits them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    called = tmp_path / "called"
    for name in ("sbatch", "squeue", "sacct", "scontrol", "scancel"):  # no job in Slurm
        (bin_dir / name).write_text(f"#!/bin/sh\necho {name} >> {called}\n")
        (bin_dir / name).chmod(0o755)
    config = tmp_path / "carbond.toml"
    config.write_text(
        '[[regions]]\nname = "qc"\nzone = "CA-QC"\nexecutor = "slurm"\n'
        '[regions.slurm]\npartition = "alpha"\n'
        f'[executors.slurm]\nbin_dir = "{bin_dir}"\nallow_root_jobs = false\n'
    )
    refusing = build_slurm_executor(load_settings(config, state_dir=tmp_path))
    assert refusing is not None
    spec = replace(launch_spec(tmp_path), uid=0, gid=0)

    with pytest.raises(LaunchRefusedError, match=r"^job j1: refusing to run a job as root$"):
        refusing.launch(spec, T0)
    with pytest.raises(LaunchRefusedError, match="refusing to run a job as root"):
        refusing.hold(spec, T0 + timedelta(hours=1), "", T0, new=True)
    assert "sbatch" not in (called.read_text() if called.exists() else "")

    slurm = FakeSlurm()  # the default: root's job is submitted
    slurm_executor(slurm).launch(spec, T0)
    assert [job.name for job in slurm.jobs.values()] == ["carbond-j1"]


def test_a_root_job_held_before_root_jobs_were_turned_off_is_cancelled_at_release(
    tmp_path: Path,
) -> None:
    """A root job handed to Slurm (held) by a daemon that allowed root's jobs, released by
    one restarted with ``allow_root_jobs = false``: it is not let start as root; its held
    Slurm job is cancelled (left held, Slurm would start it at its planned time) and the
    release fails naming why."""
    slurm = FakeSlurm()
    held = slurm_executor(slurm).hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    restarted = SlurmExecutor(
        {"qc": Target("alpha")}, runner=slurm, known_gpus=DEFAULT_GPU_CATALOG.names(),
        allow_root_jobs=False,
    )  # fmt: skip

    with pytest.raises(ExecutorError, match=r"run a job as root; its held Slurm job 100 is canc"):
        restarted.release(launch_spec(tmp_path), held.token, T0 + timedelta(hours=1))

    [job] = slurm.jobs.values()
    assert job.state == "CANCELLED" and job.start != "now"  # never released


def test_a_root_job_held_before_root_jobs_were_turned_off_is_cancelled_when_first_seen(
    tmp_path: Path,
) -> None:
    """It was cancelled only at its release: a carbond late for that round (a long plan, a
    Slurm outage) left Slurm to start it as root at its ``--begin``. A restarted executor with
    ``allow_root_jobs = false`` now cancels it the first time it sees it: watched between
    plans (the service's held jobs, the job failing with the refusal's words) or moved by a
    new plan (not moved); another user's held job is left alone."""
    slurm = FakeSlurm()
    allowing = slurm_executor(slurm)
    later = T0 + timedelta(hours=1)
    watched = allowing.hold(launch_spec(tmp_path), later, "", T0)  # Slurm job 100, root's
    moved = allowing.hold(replace(launch_spec(tmp_path), job_id="j2"), later, "", T0)  # 101
    users = replace(launch_spec(tmp_path), job_id="j3", uid=1000, gid=1000)
    user_held = allowing.hold(users, later, "", T0)  # 102
    restarted = SlurmExecutor(
        {"qc": Target("alpha"), "pace": Target("beta")}, runner=slurm,
        known_gpus=DEFAULT_GPU_CATALOG.names(), allow_root_jobs=False,
    )  # fmt: skip
    restarted.discover("qc")
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        with ledger.transaction():
            for job_id, uid, token in (("j1", 0, watched.token), ("j3", 1000, user_held.token)):
                ledger.add_job(job_request(job_id, T0), uid, uid, "queue.jsonl:1", T0)
                ledger.transition(job_id, "planned", T0, "planned")
                ledger.add_run(job_id, "slurm", ["qc/0"], [0], 60.0, T0)
                ledger.set_run_token(job_id, token)
        calls = len(slurm.calls)

        HeldJobs(ledger, {"slurm": restarted}).watch(T0 + timedelta(minutes=1))

        assert ledger.job("j1").state == "failed"
        assert ledger.transitions("j1")[-1].reason == (
            "launch failed: job j1: refusing to run a job as root; its held Slurm job 100 is "
            "cancelled"
        )
        assert ledger.run("j1") is None and ledger.outcome("j1") is None
        assert ledger.job("j3").state == "planned"
    assert slurm.jobs["100"].held and slurm.jobs["100"].state == "CANCELLED"
    assert slurm.jobs["102"].state == "PENDING" and not slurm.jobs["102"].held
    assert not [c for c in slurm.calls[calls:] if "update" in c]

    again = restarted.hold(replace(launch_spec(tmp_path), job_id="j2"), later + timedelta(hours=1),
                           moved.token, T0 + timedelta(minutes=2))  # fmt: skip

    assert again == Held(moved.token, ended=EndedUnstarted(
        "job j2: refusing to run a job as root; its held Slurm job 101 is cancelled",
        by_owner=False, refused=True))  # fmt: skip
    assert slurm.jobs["101"].state == "CANCELLED" and slurm.jobs["101"].start == slurm_time(later)
    assert not [c for c in slurm.calls[calls:] if "update" in c]  # neither was moved


@dataclass
class _HoldFails(FakeSlurm):
    """``scontrol hold`` refused (an operator's rights withdrawn, a controller plugin), the
    rest answered; a job cancelled while pending ends unstarted, as on Slurm 22.05."""

    def _hold(self, slurm_id: str, *, release: bool = False) -> CommandResult:
        if release:
            return super()._hold(slurm_id, release=True)
        return CommandResult(1, "", f"Access/permission denied for job {slurm_id}\n")

    def _scancel(self, argv: Sequence[str], opts: dict[str, str]) -> CommandResult:
        self.jobs[argv[-1]].unstarted = self.jobs[argv[-1]].state == "PENDING"
        return super()._scancel(argv, opts)


def test_a_refused_root_job_whose_hold_keeps_failing_is_named_once_then_cancelled(
    tmp_path: Path,
) -> None:
    """A root job held by a daemon that allowed root's jobs, watched by one restarted with
    ``allow_root_jobs = false`` whose ``scontrol hold`` fails: it was asked again every
    watch, silently and for ever, and left to start as root at its planned time. The first
    failure is now named (``slurm_held_job_hold_failed``, once), and after three the job is
    cancelled without a hold and fails with the refusal's words."""
    slurm = _HoldFails()
    held = slurm_executor(slurm).hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    refusing = SlurmExecutor({"qc": Target("alpha")}, runner=slurm,
                             known_gpus=DEFAULT_GPU_CATALOG.names(),
                             allow_root_jobs=False)  # fmt: skip
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        with ledger.transaction():
            ledger.add_job(job_request("j1", T0), 0, 0, "queue.jsonl:1", T0)
            ledger.transition("j1", "planned", T0, "planned")
            ledger.add_run("j1", "slurm", ["qc/0"], [0], 60.0, T0)
            ledger.set_run_token("j1", held.token)
        watching = HeldJobs(ledger, {"slurm": refusing})

        with capture_logs() as logs:
            for minute in (1, 2):
                watching.watch(T0 + timedelta(minutes=minute))
                assert ledger.job("j1").state == "planned"  # asked again next time
            assert slurm.jobs["100"].state == "PENDING"
            watching.watch(T0 + timedelta(minutes=3))

        assert slurm.jobs["100"].state == "CANCELLED"
        assert ledger.job("j1").state == "failed"
        assert ledger.transitions("j1")[-1].reason == (
            "launch failed: job j1: refusing to run a job as root; its held Slurm job 100 is "
            "cancelled without a hold (scontrol hold failed 3 times: Access/permission denied "
            "for job 100)"
        )
    [failed] = [e for e in logs if e["event"] == "slurm_held_job_hold_failed"]
    assert failed["slurm_id"] == "100" and failed["error"] == "Access/permission denied for job 100"
    [refused] = [e for e in logs if e["event"] == "slurm_held_job_refused"]
    assert refused["started"] is None
