"""A Slurm partition that is not up (``scontrol show partition``: ``State=DOWN``, ``DRAIN``,
``INACTIVE``, or gone): its region's GPUs are unavailable to the planner while it lasts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.executors.errors import ExecutorError, RegionClosedError
from daemon.executors.slurm import CommandResult
from daemon.executors.slurm.parse import SlurmOutputError
from daemon.executors.slurm.scontrol import config_value, parse_partitions
from policies import Device
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.executors.fake_slurm import RECORDED, T0, FakeSlurm, launch_spec, slurm_executor

DOWN = (RECORDED / "states" / "scontrol_show_partition_down.txt").read_text()


def _devices() -> list[Device]:
    t4, l4 = DEFAULT_GPU_CATALOG.get("T4"), DEFAULT_GPU_CATALOG.get("L4")
    return [Device(f"qc/{i}", "qc", "CA-QC", t4) for i in range(2)] + [
        Device(f"pace/{i}", "pace", "US-NW-PACE", l4) for i in range(2)
    ]


def test_partition_states_are_read_from_scontrol_show_partition() -> None:
    assert parse_partitions(DOWN) == {"alpha": "DOWN", "beta": "UP"}
    with pytest.raises(SlurmOutputError, match="no PartitionName"):
        parse_partitions("NodeName=n1 State=IDLE\n")


def test_a_partition_not_up_makes_its_region_unavailable_logged_once_while_it_lasts() -> None:
    """carbond read only the nodes' states, so a partition an operator set down (its nodes
    idle) was planned onto: Slurm kept the job pending (``PartitionDown``) until carbond took
    it back and handed it there again. Now its region's GPUs are unavailable while it is not
    up (also when it is gone from Slurm), named once (``slurm_partition_unavailable``) and
    again when its state changes; ``slurm_partition_up`` once it is back."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    up = slurm.partitions

    with capture_logs() as logs:
        rounds = []
        for text in (DOWN, DOWN, DOWN.replace("State=DOWN", "State=DRAIN"),
                     up.replace("PartitionName=alpha", "PartitionName=gone"), up):  # fmt: skip
            slurm.partitions = text
            rounds.append([d.available for d in executor.available(_devices(), T0)])

    assert rounds == [[False, False, True, True]] * 4 + [[True] * 4]
    said = [(e["event"], e["region"], e.get("state")) for e in logs]
    assert said == [
        ("slurm_partition_unavailable", "qc", "DOWN"),
        ("slurm_partition_unavailable", "qc", "DRAIN"),
        ("slurm_partition_unavailable", "qc", "not in Slurm"),
        ("slurm_partition_up", "qc", None),
    ]


def _reads(slurm: FakeSlurm) -> int:
    """How many times ``scontrol show partition`` ran."""
    return sum(1 for c in slurm.calls if "show" in c and "partition" in c)


def test_partition_states_all_up_are_read_once_a_minute_not_every_round(
    tmp_path: Path,
) -> None:
    """``scontrol show partition`` ran every planning round (every ``plan_s``, 30 s by
    default), for states that seldom change. While every partition of carbond's regions is
    up they are now kept for ``partitions_ttl_s`` (60 s); one not up is read every round, so
    its return is noticed at once."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    before = _reads(slurm)

    for seconds in (0, 30, 59):
        assert all(
            d.available for d in executor.available(_devices(), T0 + timedelta(seconds=seconds))
        )
    assert _reads(slurm) - before == 1
    slurm.partitions = DOWN
    executor.available(_devices(), T0 + timedelta(seconds=60))  # kept no longer: read
    assert _reads(slurm) - before == 2
    for seconds in (61, 62):  # alpha down: read each round until it is up
        marked = executor.available(_devices(), T0 + timedelta(seconds=seconds))
        assert [d.available for d in marked] == [False, False, True, True]
    slurm.partitions = DOWN.replace("State=DOWN", "State=UP")
    assert all(d.available for d in executor.available(_devices(), T0 + timedelta(seconds=63)))
    assert _reads(slurm) - before == 5


def test_a_sign_that_a_partition_went_down_has_its_state_read_at_the_next_round(
    tmp_path: Path,
) -> None:
    """Within the minute partition states are kept, a carbond job Slurm keeps pending
    ``PartitionDown`` (a poll's squeue), or an ``sbatch`` Slurm refused, has them read again
    at the next round, so the region is not planned onto meanwhile."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    executor.available(_devices(), T0)
    handle = executor.launch(launch_spec(tmp_path), T0)
    [job] = slurm.jobs.values()
    slurm.partitions = DOWN
    assert all(d.available for d in executor.available(_devices(), T0 + timedelta(seconds=1)))

    job.state, job.reason = "PENDING", "PartitionDown"
    assert executor.poll([handle], T0 + timedelta(seconds=2)) == []

    marked = executor.available(_devices(), T0 + timedelta(seconds=3))
    assert [d.available for d in marked] == [False, False, True, True]

    refusing = _SbatchRefused(partitions=slurm.partitions)
    executor = slurm_executor(refusing)
    executor.available(_devices(), T0)
    reads = _reads(refusing)
    with pytest.raises(ExecutorError, match="sbatch refused it"):
        executor.launch(launch_spec(tmp_path), T0 + timedelta(seconds=1))
    executor.available(_devices(), T0 + timedelta(seconds=2))
    assert _reads(refusing) == reads + 2  # at once, for the refusal; then the next round


@dataclass
class _SbatchRefused(FakeSlurm):
    """``sbatch`` refused, as Slurm 22.05 refuses a job for a partition set ``DRAIN`` or
    ``INACTIVE`` (measured on the local cluster), or with other words ``said``."""

    said: str = "Required partition not available (inactive or drain)"

    def _sbatch(self, argv: Sequence[str], opts: dict[str, str]) -> CommandResult:
        return CommandResult(1, "", f"sbatch: error: Batch job submission failed: {self.said}\n")


def test_an_sbatch_refused_for_its_partition_makes_the_job_wait_not_fail(tmp_path: Path) -> None:
    """sbatch refused a job because its partition takes none (set DRAIN or INACTIVE since
    its state was kept): the launch failed with a plain ExecutorError, so the job failed.
    Its partition is now read at once: not UP, the launch raises RegionClosedError (the job
    waits), naming the state; UP again by then, sbatch's own words decide; a refusal of the
    job's own (an account Slurm does not know) on an UP partition still fails it."""
    drained = _SbatchRefused(partitions=DOWN)
    with pytest.raises(RegionClosedError) as raised:
        slurm_executor(drained).launch(launch_spec(tmp_path), T0)
    assert str(raised.value) == (
        "job j1: sbatch refused it: sbatch: error: Batch job submission failed: Required "
        "partition not available (inactive or drain); partition alpha is DOWN now: the job "
        "waits, planned again"
    )
    up_again = _SbatchRefused()  # the operator set it UP between the sbatch and the read
    with pytest.raises(RegionClosedError, match="partition alpha is not available now"):
        slurm_executor(up_again).launch(launch_spec(tmp_path), T0)
    own_fault = _SbatchRefused(said="Invalid account or account/partition combination")
    with pytest.raises(ExecutorError) as failed:
        slurm_executor(own_fault).launch(launch_spec(tmp_path), T0)
    assert not isinstance(failed.value, RegionClosedError)


def test_the_energy_plugin_is_read_from_scontrol_show_config() -> None:
    """``scontrol show config`` as Slurm 22.05 prints it (lines of the local cluster's)."""
    shown = (
        "Configuration data as of 2026-12-08T00:02:00\n"
        "AccountingStorageTRES   = cpu,mem,energy,node,billing,fs/disk,vmem,pages,gres/gpu\n"
        "AcctGatherEnergyType    = acct_gather_energy/pm_counters\n"
        "JobAcctGatherFrequency  = task=1,energy=1\n"
    )
    assert config_value(shown, "AcctGatherEnergyType") == "acct_gather_energy/pm_counters"
    assert config_value(shown, "AcctGatherNodeFreq") is None
