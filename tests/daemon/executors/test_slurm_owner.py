"""Whose a Slurm job is: an owner Slurm cannot start jobs for, or root when root's jobs are
not allowed, is refused before ``sbatch`` (the real cluster's behaviour:
``tests/slurm/test_owner_on_slurm.py``)."""

from __future__ import annotations

import pwd
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.assemble import build_slurm_executor
from daemon.executors.errors import ExecutorError, LaunchRefusedError
from daemon.executors.slurm.commands import Target
from daemon.executors.slurm.executor import SlurmExecutor
from daemon.settings import load_settings
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.executors.test_slurm_executor import T0, FakeSlurm, _executor, _spec


def _uid_without_user() -> int:
    """A uid with no passwd entry on this host."""
    uid = 54321
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


def test_an_owner_with_no_passwd_entry_is_neither_launched_nor_held(tmp_path: Path) -> None:
    slurm = FakeSlurm()
    executor = _executor(slurm)
    uid = _uid_without_user()
    spec = replace(_spec(tmp_path), uid=uid, gid=uid)

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
    spec = replace(_spec(tmp_path), uid=0, gid=0)

    with pytest.raises(LaunchRefusedError, match=r"^job j1: refusing to run a job as root$"):
        refusing.launch(spec, T0)
    with pytest.raises(LaunchRefusedError, match="refusing to run a job as root"):
        refusing.hold(spec, T0 + timedelta(hours=1), "", T0, new=True)
    assert "sbatch" not in (called.read_text() if called.exists() else "")

    slurm = FakeSlurm()  # the default: root's job is submitted
    _executor(slurm).launch(spec, T0)
    assert [job.name for job in slurm.jobs.values()] == ["carbond-j1"]


def test_a_root_job_held_before_root_jobs_were_turned_off_is_cancelled_at_release(
    tmp_path: Path,
) -> None:
    """A root job handed to Slurm (held) by a daemon that allowed root's jobs, released by
    one restarted with ``allow_root_jobs = false``: it is not let start as root; its held
    Slurm job is cancelled (left held, Slurm would start it at its planned time) and the
    release fails naming why."""
    slurm = FakeSlurm()
    held = _executor(slurm).hold(_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    restarted = SlurmExecutor(
        {"qc": Target("alpha")}, runner=slurm, known_gpus=DEFAULT_GPU_CATALOG.names(),
        allow_root_jobs=False,
    )  # fmt: skip

    with pytest.raises(ExecutorError, match=r"run a job as root; its held Slurm job 100 is canc"):
        restarted.release(_spec(tmp_path), held.token, T0 + timedelta(hours=1))

    [job] = slurm.jobs.values()
    assert job.state == "CANCELLED" and job.start != "now"  # never released
