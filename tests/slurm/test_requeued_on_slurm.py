"""A carbond job that ran in Slurm and that an admin then requeued goes back to PENDING
(``BeginTime``); carbond takes it back after ``pending_grace_s`` and must not say it never
started (``make slurm-up`` first). carbond submits ``--no-requeue``, so a plain ``scontrol
requeue`` is refused; an admin who sets ``Requeue=1`` first (or a region whose
``sbatch_options`` give ``--requeue``) gets it requeued."""

from __future__ import annotations

import pwd
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from daemon.assemble import Daemon
from daemon.executors.base import LaunchSpec, NotStarted
from daemon.executors.slurm import SlurmExecutor, SubprocessRunner, Target
from tests.slurm.carbond_jobs import (
    MovableForecast,
    append_queue,
    queue_line,
    squeue_jobs,
    tick_until,
    unique_ids,
)
from tests.slurm.carbond_jobs import service as _service
from tests.slurm.cluster import SlurmCluster

service = _service  # the fixture: a service in-process (jobs owned by root), on the real Slurm

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


def test_a_job_requeued_after_it_ran_that_runs_again_is_charged_the_energy_of_both_runs(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster
) -> None:
    """Its outcome took the energy of its last run only (plain ``sacct`` shows no other): the
    run Slurm requeued went uncounted. sacct ``--duplicates`` keeps that run's rows; carbond
    now charges the sum and its reason says so."""
    daemon, forecast = service
    [job] = unique_ids("rerun")
    now = datetime.now(UTC)
    forecast.dip = ("CA-QC", now - timedelta(hours=1), now + timedelta(hours=3), 1.0)  # now
    append_queue(daemon.settings.state_dir,
                 [queue_line(job, ["sleep", "4"], deadline="+3h", regions=["qc"])])  # fmt: skip
    [row] = tick_until(slurm_cluster, daemon, "the job to run",
                       lambda: squeue_jobs(slurm_cluster, [job], "RUNNING"))  # fmt: skip
    time.sleep(2)  # its first run draws for a while
    slurm_cluster.run(["scontrol", "update", f"JobId={row['id']}", "Requeue=1"])  # an admin's
    slurm_cluster.run(["scontrol", "requeue", row["id"]])
    slurm_cluster.wait_until(lambda: _squeue(slurm_cluster, row["id"]).startswith("PENDING"),
                             what="the requeued job to wait")  # fmt: skip
    # slurmd revokes the requeued run's credential to the second: a run started again within
    # that second is killed at once ("Killing non-startable batch JobId=N: Job credential
    # revoked", exit code 1), so let the second pass first
    time.sleep(1.1)
    slurm_cluster.run(["scontrol", "update", f"JobId={row['id']}", "StartTime=now"])  # again

    tick_until(slurm_cluster, daemon, "the job final",
               lambda: daemon.ledger.job(job).state in ("succeeded", "failed"))  # fmt: skip

    assert daemon.ledger.job(job).state == "succeeded"
    batches = [r for r in slurm_cluster.run(
        ["sacct", "-D", "-j", row["id"], "-n", "-P", "-o", "JobID,ConsumedEnergyRaw"]
    ).stdout.split() if r.startswith(f"{row['id']}.batch|")]  # fmt: skip
    runs_j = [float(r.split("|")[1]) for r in batches]
    assert len(runs_j) == 2 and min(runs_j) > 0  # the requeued run's, then the last run's
    outcome = daemon.ledger.outcome(job)
    assert outcome is not None and outcome["energy_method"] == "slurm-sacct"
    assert outcome["measured_energy_j"] == pytest.approx(sum(runs_j))
    run = daemon.ledger.run(job)  # its run's reason: carbond status ID's "run ended"
    assert run is not None and run.reason is not None
    reason = run.reason
    assert f"energy {sum(runs_j):.0f} J over its 2 runs: {runs_j[1]:.0f} J of the last" in reason
    assert f" on n1 (REQUEUED): {runs_j[0]:.0f} J)" in reason
