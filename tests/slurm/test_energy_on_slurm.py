"""The energy of a job whose script runs ``srun`` steps, as ``sacct`` accounts it on the local
cluster's fake meter (``make slurm-up`` first)."""

from __future__ import annotations

import pwd
import time
import uuid
from datetime import UTC, datetime

import pytest

from daemon.executors.base import ExitStatus, LaunchSpec
from daemon.executors.slurm import SlurmExecutor, SubprocessRunner, Target
from tests.slurm.cluster import SlurmCluster

pytestmark = pytest.mark.slurm


def test_a_job_with_srun_steps_is_charged_its_whole_script_not_the_sum_of_its_steps(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slurm fills the job's own sacct row with the sum of its srun steps only: the script's
    # time outside them (here 3 s of 11 s) went uncounted.
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / "logs"
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(), known_gpus=["T4"])
    executor.discover("qc")
    job = f"steps-{uuid.uuid4().hex[:6]}"
    script = "srun sleep 4; srun sleep 4; sleep 3"
    spec = LaunchSpec(job, ("sh", "-c", script), owner.pw_uid, owner.pw_gid, (0,), logs,
                      region="qc", device_ids=("qc/0",))  # fmt: skip
    handle = executor.launch(spec, datetime.now(UTC))
    slurm_id = int(handle.token.split('"')[3])

    ends: list[ExitStatus] = []
    deadline = time.monotonic() + 60
    while not ends and time.monotonic() < deadline:
        ends = [s for s in executor.poll([handle], datetime.now(UTC)) if isinstance(s, ExitStatus)]
        time.sleep(0.5)
    [end] = ends

    rows = {r["JobID"]: r for r in slurm_cluster.sacct(slurm_id, ["JobID", "ConsumedEnergyRaw"])}
    batch = float(rows[f"{slurm_id}.batch"]["ConsumedEnergyRaw"])
    steps = float(rows[f"{slurm_id}.0"]["ConsumedEnergyRaw"]) + float(
        rows[f"{slurm_id}.1"]["ConsumedEnergyRaw"]
    )
    assert end.succeeded and end.energy_method == "slurm-sacct"
    assert end.energy_j == batch
    assert end.energy_j > steps * 1.15  # 11 s of script against 8 s of steps, at 150 W
