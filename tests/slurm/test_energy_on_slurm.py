"""The energy of a job whose script runs ``srun`` steps, as ``sacct`` accounts it on the local
cluster's fake meter (``make slurm-up`` first)."""

from __future__ import annotations

import pwd
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.executors.base import ExitStatus, LaunchSpec
from daemon.executors.slurm import SlurmExecutor, SubprocessRunner, Target
from daemon.executors.slurm.runner import CommandResult
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


def test_a_meter_reading_nothing_on_a_cluster_that_accounts_energy_is_logged_once(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``AcctGatherEnergyType`` set and n1's meter at 0 W, sacct gives a job no energy
    (``ConsumedEnergyRaw`` empty on its job row, 0 on its batch step), as a cluster without
    energy accounting does: carbond recorded the outcome estimated and said nothing. It now
    logs ``slurm_energy_unmeasured`` once per cluster, reading ``scontrol show config`` once
    per executor (start or reload), not per poll."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    slurm_cluster.set_watts("n1", 0)
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / "logs"
    runner = _CountingRunner()
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=runner, known_gpus=["T4"])
    executor.discover("qc")
    events, ends = [], []
    for n in range(2):
        spec = LaunchSpec(f"zero-{n}-{uuid.uuid4().hex[:6]}", ("sleep", "4"), owner.pw_uid,
                          owner.pw_gid, (0,), logs, region="qc", device_ids=("qc/0",))  # fmt: skip
        handle = executor.launch(spec, datetime.now(UTC))
        found: list[ExitStatus] = []
        deadline = time.monotonic() + 60
        with capture_logs() as captured:
            while not found and time.monotonic() < deadline:
                found = [s for s in executor.poll([handle], datetime.now(UTC))
                         if isinstance(s, ExitStatus)]  # fmt: skip
                time.sleep(0.5)
        ends += found
        events += [e for e in captured if e["event"] == "slurm_energy_unmeasured"]
    slurm_id = int(handle.token.split('"')[3])
    rows = {r["JobID"]: r for r in slurm_cluster.sacct(slurm_id, ["JobID", "ConsumedEnergyRaw"])}
    assert rows[str(slurm_id)]["ConsumedEnergyRaw"] == ""
    assert rows[f"{slurm_id}.batch"]["ConsumedEnergyRaw"] == "0"
    assert [e.succeeded and e.energy_j is None for e in ends] == [True, True]
    [event] = events  # once per cluster
    assert event["cluster"] is None and event["plugin"] == "acct_gather_energy/pm_counters"
    assert event["ran_s"] >= 4 and event["job_id"].startswith("zero-0-")
    assert runner.config_reads == 1


class _CountingRunner(SubprocessRunner):
    """Runs the commands, counting the ``scontrol show config`` among them."""

    config_reads = 0

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        self.config_reads += list(argv[-2:]) == ["show", "config"]
        return super().__call__(argv, **kwargs)
