"""Names Slurm users choose (``sbatch -J``, ``srun -J``) are printed raw by ``squeue`` and
``sacct``, ``|`` and newlines included: they must not stop carbond reading Slurm (``make
slurm-up`` first)."""

from __future__ import annotations

import json
import pwd
import uuid
from datetime import UTC, datetime

import pytest

from daemon.executors.base import LaunchSpec
from daemon.executors.slurm import SlurmExecutor, SubprocessRunner, Target
from policies import Device
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.slurm.cluster import SlurmCluster

pytestmark = pytest.mark.slurm

ODD_NAMES = ("evil|name|x", "line1\nline2|y")


@pytest.fixture
def executor(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmExecutor:
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    return SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(), known_gpus=["T4"])


def test_others_jobs_with_odd_names_hold_their_gpus_and_leave_the_partition_usable(
    slurm_cluster: SlurmCluster, executor: SlurmExecutor
) -> None:
    executor.discover("qc")
    hold, other = ("-p", "alpha", "--gres=gpu:1"), slurm_cluster.other_user
    jobs = [
        slurm_cluster.sbatch(*hold, f"--job-name={n}", wrap="sleep 120", user=other)
        for n in ODD_NAMES
    ]
    slurm_cluster.wait_until(lambda: all(slurm_cluster.job_state(j) == "RUNNING" for j in jobs),
                             what="both odd-named jobs to run")  # fmt: skip
    t4 = DEFAULT_GPU_CATALOG.get("T4")
    devices = [Device(f"qc/{i}", "qc", "CA-QC", t4) for i in range(2)]

    now = datetime.now(UTC)
    seen = executor.available(devices, now)

    assert [d.available for d in seen] == [True, True]  # the partition is not "unreachable"
    assert all(d.busy_until is not None and d.busy_until > now for d in seen)


def test_a_job_whose_steps_have_odd_names_is_seen_to_end(
    slurm_cluster: SlurmCluster, executor: SlurmExecutor
) -> None:
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / "logs"
    job = f"steps-{uuid.uuid4().hex[:8]}"
    script = "srun -J 'st|ep' true && srun -J \"$(printf 'a\\nb|c')\" true"
    spec = LaunchSpec(job, ("sh", "-c", script), owner.pw_uid, owner.pw_gid, (0,), logs,
                      region="qc", device_ids=("qc/0",))  # fmt: skip
    handle = executor.launch(spec, datetime.now(UTC))

    [status] = slurm_cluster.wait_until(
        lambda: executor.poll([handle], datetime.now(UTC)), what="the job to end"
    )

    assert (status.succeeded, status.reason) == (True, "slurm COMPLETED")


def test_a_job_its_owner_renames_oddly_does_not_stop_polling_the_others(
    slurm_cluster: SlurmCluster, executor: SlurmExecutor
) -> None:
    """Its owner may rename a carbond job (``scontrol update JobName=...``): squeue printed the
    new name raw, '|' and newlines included, and one such row failed every poll of the
    cluster (``squeue: expected 8 '|'-separated fields``), so no job of it was seen to end.
    The poll no longer reads the name; both jobs are followed to their end."""
    executor.discover("qc")
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / "logs"
    tag = uuid.uuid4().hex[:8]
    handles = []
    for i, name in enumerate(ODD_NAMES):
        spec = LaunchSpec(f"renamed-{i}-{tag}", ("sleep", "3"), owner.pw_uid, owner.pw_gid,
                          (i,), logs, region="qc", device_ids=(f"qc/{i}",))  # fmt: skip
        handle = executor.launch(spec, datetime.now(UTC))
        slurm_id = str(json.loads(handle.token)["slurm_id"])
        slurm_cluster.run(["scontrol", "update", f"JobId={slurm_id}", f"JobName={name}"],
                          user=slurm_cluster.user)  # fmt: skip
        handles.append(handle)
    plain = LaunchSpec(f"plain-{tag}", ("sleep", "3"), owner.pw_uid, owner.pw_gid, (0,), logs,
                       region="qc", device_ids=("qc/1",))  # fmt: skip
    handles.append(executor.launch(plain, datetime.now(UTC)))

    ended: dict[str, bool] = {}

    def all_ended() -> bool:
        for status in executor.poll([h for h in handles if h.job_id not in ended],
                                    datetime.now(UTC)):  # fmt: skip
            ended[status.job_id] = status.succeeded
        return len(ended) == len(handles)

    slurm_cluster.wait_until(all_ended, timeout_s=60, what="all three jobs to end")

    assert ended == {h.job_id: True for h in handles}
