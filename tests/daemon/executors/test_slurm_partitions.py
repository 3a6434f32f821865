"""A Slurm partition that is not up (``scontrol show partition``: ``State=DOWN``, ``DRAIN``,
``INACTIVE``, or gone): its region's GPUs are unavailable to the planner while it lasts."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from daemon.executors.slurm.parse import SlurmOutputError, parse_partitions
from policies import Device
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.executors.fake_slurm import RECORDED, T0, FakeSlurm, _executor

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
    executor = _executor(slurm)
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
