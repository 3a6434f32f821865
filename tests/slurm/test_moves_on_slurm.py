"""A held job carbond moves to another partition gets what a job submitted there gets, on the
real local Slurm (``make slurm-up``).

GPU clusters commonly give a partition per-GPU defaults (``DefCpuPerGPU``, ``DefMemPerGPU``).
Slurm 22.05 sets them on a job as it is submitted; ``scontrol update Partition=`` does not set
them again. Moved in place with carbond's typed request (``Gres=gpu:l4:1``), the job was never
run, either way: pending ``BadConstraints`` for ever. (An untyped request ran, with the share of
the partition it was submitted to: from alpha to beta, the whole node's memory, ``mem=4000M``;
from beta to alpha, one CPU where alpha gives two.) carbond now submits it afresh there.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.executors.base import LaunchSpec, RunHandle
from daemon.executors.slurm import SlurmExecutor, SubprocessRunner, Target
from daemon.executors.slurm.queries import Token
from tests.slurm.cluster import SlurmCluster

pytestmark = pytest.mark.slurm

GPU_DEFAULTS = "DefCpuPerGPU=2 DefMemPerGPU=700"


def _job_defaults(cluster: SlurmCluster) -> str:
    out = cluster.run(["scontrol", "--oneliner", "show", "partition", "alpha"]).stdout
    return next(f for f in out.split() if f.startswith("JobDefaults="))


@pytest.fixture(scope="module")
def alpha_gpu_defaults(_slurm_cluster_session: SlurmCluster) -> Iterator[None]:
    """Partition alpha with per-GPU defaults (beta without), from its ``slurm.conf`` line
    re-read by ``scontrol reconfigure``, once for this module's tests (the fixture's reset
    between them leaves partitions' defaults alone); the file restored and re-read after."""
    slurm_cluster = _slurm_cluster_session
    conf = slurm_cluster.slurm_conf
    original = conf.read_text()
    [line] = [x for x in original.splitlines() if x.startswith("PartitionName=alpha ")]
    conf.write_text(original.replace(line, f"{line} {GPU_DEFAULTS}"))
    try:
        slurm_cluster.run(["scontrol", "reconfigure"])
        slurm_cluster.wait_until(
            lambda: _job_defaults(slurm_cluster) != "JobDefaults=(null)",
            what="alpha's per-GPU defaults",
        )
        yield
    finally:
        conf.write_text(original)
        slurm_cluster.run(["scontrol", "reconfigure"])
        slurm_cluster.wait_until(
            lambda: _job_defaults(slurm_cluster) == "JobDefaults=(null)",
            what="alpha without per-GPU defaults",
        )


def _alloc_tres(cluster: SlurmCluster, slurm_id: int) -> str:
    """The ``AllocTRES`` of an ended job's own row."""
    cluster.wait_for_job_end(slurm_id)
    rows = cluster.sacct(slurm_id, ("JobID", "AllocTRES"))
    return next(r["AllocTRES"] for r in rows if r["JobID"] == str(slurm_id))


@pytest.mark.parametrize(("first", "then"), [("pace", "qc"), ("qc", "pace")],
                         ids=["beta-to-alpha", "alpha-to-beta"])  # fmt: skip
def test_a_held_job_moved_to_another_partition_gets_that_partition_s_share(
    slurm_cluster: SlurmCluster,
    alpha_gpu_defaults: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    first: str,
    then: str,
) -> None:
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    executor = SlurmExecutor({"qc": Target("alpha"), "pace": Target("beta")},
                             runner=SubprocessRunner(), known_gpus=["T4", "L4"])  # fmt: skip
    executor.discover("qc")
    executor.discover("pace")
    partition, gres = {"qc": ("alpha", "gpu:t4:1"), "pace": ("beta", "gpu:l4:1")}[then]
    reference = slurm_cluster.sbatch("-p", partition, "--nodes=1", f"--gres={gres}", wrap="true")
    expected = _alloc_tres(slurm_cluster, reference)  # what a job submitted there gets

    job = f"move-{uuid.uuid4().hex[:8]}"

    def spec(region: str) -> LaunchSpec:
        return LaunchSpec(job, ("true",), 0, 0, (0,), tmp_path, region=region,
                          device_ids=(f"{region}/0",))  # fmt: skip

    now = datetime.now(UTC)
    held = executor.hold(spec(first), now + timedelta(hours=1), "", now)
    moved = executor.hold(spec(then), now + timedelta(hours=2), held.token, now)
    handle = executor.release(spec(then), moved.token, datetime.now(UTC))
    running = RunHandle(job, "slurm", handle.token, handle.started_at, uid=0)
    [status] = slurm_cluster.wait_until(lambda: executor.poll([running], datetime.now(UTC)),
                                        timeout_s=60, what="the moved job to end")  # fmt: skip

    assert status.succeeded
    slurm_id = int(Token.decode(job, handle.token).slurm_id)
    assert _alloc_tres(slurm_cluster, slurm_id) == expected


def test_a_held_job_whose_request_becomes_typed_is_resubmitted_at_its_new_start(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Held before its region's GPUs were known (``--gres=gpu:1``), then moved once they are
    (``gpu:t4:1``): Slurm 22.05 refuses that ``scontrol update`` whole ("with and without
    type identification"), its start included; carbond submits it afresh instead."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(),
                             known_gpus=["T4"])  # fmt: skip
    job = f"typed-{uuid.uuid4().hex[:8]}"
    spec = LaunchSpec(job, ("true",), 0, 0, (0,), tmp_path, region="qc", device_ids=("qc/0",))
    now = datetime.now(UTC).replace(microsecond=0)
    held = executor.hold(spec, now + timedelta(hours=1), "", now)
    executor.discover("qc")

    later = now + timedelta(hours=2)
    moved = executor.hold(spec, later, held.token, now)

    old, new = (Token.decode(job, t.token).slurm_id for t in (held, moved))
    out = slurm_cluster.run(["squeue", "--noheader", "--states=all", "--jobs", f"{old},{new}",
                             "--format=%i|%T|%S|%b"]).stdout  # fmt: skip
    rows = {r.split("|")[0]: r.split("|")[1:] for r in out.split()}
    assert rows[old][0] == "CANCELLED" and old != new
    start = later.astimezone().replace(tzinfo=None).isoformat()
    assert rows[new] == ["PENDING", start, "gres:gpu:t4:1"]
    slurm_cluster.run(["scancel", new])
