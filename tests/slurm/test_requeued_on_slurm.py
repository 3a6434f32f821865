"""A carbond job that ran in Slurm and that an admin then requeued goes back to PENDING
(``BeginTime``); carbond takes it back after ``pending_grace_s`` and must not say it never
started (``make slurm-up`` first). carbond submits ``--no-requeue``, so a plain ``scontrol
requeue`` is refused; an admin who sets ``Requeue=1`` first (or a region whose
``sbatch_options`` give ``--requeue``) gets it requeued."""

from __future__ import annotations

import pwd
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from daemon.executors.base import LaunchSpec, NotStarted
from daemon.executors.slurm import SlurmExecutor, SubprocessRunner, Target
from tests.slurm.cluster import SlurmCluster

pytestmark = pytest.mark.slurm


def _squeue(slurm_cluster: SlurmCluster, slurm_id: str) -> str:
    """``state|reason`` of a job squeue shows."""
    return slurm_cluster.run(["squeue", "-h", "-j", slurm_id, "-o", "%T|%r"]).stdout.strip()


def test_a_job_requeued_after_it_ran_is_taken_back_saying_it_ran(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(),
                             known_gpus=["T4"], pending_grace_s=1)  # fmt: skip
    executor.discover("qc")
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / "logs"
    job = f"requeued-{uuid.uuid4().hex[:8]}"
    spec = LaunchSpec(job, ("sleep", "60"), owner.pw_uid, owner.pw_gid, (0,), logs,
                      region="qc", device_ids=("qc/0",))  # fmt: skip
    handle = executor.launch(spec, datetime.now(UTC))
    slurm_id = handle.token.split('"')[3]
    slurm_cluster.wait_until(lambda: _squeue(slurm_cluster, slurm_id) == "RUNNING|None",
                             what="the job to run")  # fmt: skip
    refused = slurm_cluster.run(["scontrol", "requeue", slurm_id], check=False)
    assert "presently disabled" in refused.stderr  # carbond submits it --no-requeue
    slurm_cluster.run(["scontrol", "update", f"JobId={slurm_id}", "Requeue=1"])  # an admin's
    slurm_cluster.run(["scontrol", "requeue", slurm_id])
    slurm_cluster.wait_until(lambda: _squeue(slurm_cluster, slurm_id).startswith("PENDING"),
                             what="the requeued job to wait")  # fmt: skip

    [status] = executor.poll([handle], datetime.now(UTC) + timedelta(seconds=2))  # past the grace

    assert isinstance(status, NotStarted)  # planned again, as before
    assert status.reason.startswith(f"requeued by Slurm after it ran from {handle.started_at:%Y}")
    assert " on n1 (REQUEUED), then pending again (BeginTime) " in status.reason
    assert status.reason.endswith(" s after its release; that run's energy is not recorded")
    slurm_cluster.wait_until(lambda: slurm_cluster.job_state(int(slurm_id)).startswith("CANCEL"),
                             what="sacct to have the take-back")  # fmt: skip
