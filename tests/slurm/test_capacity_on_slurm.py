"""What the planner is told about a partition's GPUs, read from the real local Slurm (``make
slurm-up`` first): nodes another group has reserved."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from daemon.executors.slurm import SlurmExecutor, SubprocessRunner, Target
from policies import Device
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.slurm.cluster import SlurmCluster

pytestmark = pytest.mark.slurm


@pytest.fixture
def reserved_n1(slurm_cluster: SlurmCluster) -> Iterator[str]:
    """n1 (partition alpha) in an active reservation for the other user only; deleted after."""
    name = "carbond-test-ops"
    slurm_cluster.run(["scontrol", "create", "reservation", f"ReservationName={name}",
                       "StartTime=now", "Duration=10", "Nodes=n1",
                       f"Users={slurm_cluster.other_user}"])  # fmt: skip
    try:
        slurm_cluster.wait_until(lambda: "RESERVED" in slurm_cluster.node_flags("n1"),
                                 what="n1 reserved")  # fmt: skip
        yield name
    finally:
        slurm_cluster.run(["scontrol", "delete", f"ReservationName={name}"], check=False)
        slurm_cluster.wait_until(lambda: "RESERVED" not in slurm_cluster.node_flags("n1"),
                                 what="n1 out of the reservation")  # fmt: skip


def _devices() -> list[Device]:
    t4, l4 = DEFAULT_GPU_CATALOG.get("T4"), DEFAULT_GPU_CATALOG.get("L4")
    return [Device(f"qc/{i}", "qc", "CA-QC", t4) for i in range(2)] + [
        Device(f"pace/{i}", "pace", "US-NW-PACE", l4) for i in range(2)
    ]


def test_gpus_of_a_node_reserved_for_others_are_unavailable(
    slurm_cluster: SlurmCluster, reserved_n1: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    targets = {"qc": Target("alpha"), "pace": Target("beta")}
    executor = SlurmExecutor(targets, runner=SubprocessRunner(), known_gpus=["T4", "L4"])
    executor.discover("qc")
    executor.discover("pace")
    # What a job carbond hands to n1 meets there: it waits for the reservation's end.
    job = slurm_cluster.sbatch("-p", "alpha", "--gres=gpu:1", wrap="true", user=slurm_cluster.user)
    slurm_cluster.wait_until(
        lambda: (
            "reserved" in slurm_cluster.run(["squeue", "-h", "-j", str(job), "-o", "%r"]).stdout
        ),
        what="a job on n1 to wait for the reservation",
    )

    seen = {d.device_id: d.available for d in executor.available(_devices(), datetime.now(UTC))}

    assert seen == {"qc/0": False, "qc/1": False, "pace/0": True, "pace/1": True}
    # A region whose jobs are submitted into a reservation may use reserved nodes.
    into = {"qc": Target("alpha", sbatch_options=(f"--reservation={reserved_n1}",))}
    executor = SlurmExecutor(into, runner=SubprocessRunner(), known_gpus=["T4"])
    executor.discover("qc")
    assert all(d.available for d in executor.available(_devices()[:2], datetime.now(UTC)))


@pytest.mark.parametrize("ask", ["--gres=gpu:1", "--gpus=1", "--ntasks=1 --gpus-per-task=1"])
def test_a_gpu_another_user_holds_is_busy_however_they_asked_for_it(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch, ask: str
) -> None:
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(), known_gpus=["T4"])
    executor.discover("qc")
    hog = slurm_cluster.sbatch("-p", "alpha", *ask.split(), "--time=30", wrap="sleep 120",
                               user=slurm_cluster.other_user)  # fmt: skip
    slurm_cluster.wait_until(lambda: slurm_cluster.job_state(hog) == "RUNNING",
                             what="the other user's job to run")  # fmt: skip

    now = datetime.now(UTC)
    qc0, qc1 = executor.available(_devices()[:2], now)

    assert qc0.busy_until is not None and qc0.busy_until > now  # squeue %b is N/A for --gpus
    assert qc1.busy_until is None and qc1.available
