"""A Slurm region whose jobs ask for a reservation may plan onto its reserved nodes, in each
spelling of ``--reservation`` that the config takes and sbatch reads (against the fake Slurm
of :mod:`tests.daemon.executors.fake_slurm`)."""

from __future__ import annotations

import pytest

from daemon.executors.slurm import SlurmExecutor, Target
from daemon.settings.sbatch_options import refusal
from policies import Device
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.executors.fake_slurm import RECORDED, T0, FakeSlurm

# n1 (alpha's two T4s) idle in an active reservation, as scontrol prints it during one
_RESERVED = (
    (RECORDED / "scontrol_nodes_drained.txt").read_text().replace("MIXED+DRAIN", "IDLE+RESERVED")
)


def _qc_available(options: tuple[str, ...]) -> list[bool]:
    """Whether each of region ``qc``'s GPUs (partition alpha, node n1) is available, with
    ``options`` as its ``sbatch_options``."""
    slurm = FakeSlurm(nodes=_RESERVED)
    executor = SlurmExecutor(
        {"qc": Target("alpha", sbatch_options=options)},
        runner=slurm,
        known_gpus=DEFAULT_GPU_CATALOG.names(),
    )
    assert executor.discover("qc") == [(0, "T4"), (1, "T4")]
    devices = [Device(f"qc/{i}", "qc", "Z", DEFAULT_GPU_CATALOG.get("T4")) for i in range(2)]
    return [d.available for d in executor.available(devices, T0)]


@pytest.mark.parametrize(
    "option", ["--reservation=maint", "--res=maint", "--reserv=maint", "--reservatio=maint"]
)
def test_a_region_asking_a_reservation_in_any_spelling_may_use_reserved_nodes(
    option: str,
) -> None:
    """sbatch 22.05 takes ``--res`` and every longer prefix of ``--reservation`` (``sbatch
    --res``: "option '--reservation' requires an argument"); the config took them, and the
    jobs went into the reservation, but only ``--reservation...`` was read as asking one, so
    with ``--res=maint`` the reserved GPUs stayed unavailable and the jobs waited queued."""
    assert refusal(option) is None  # the config takes it
    assert _qc_available(("--mem=4G", option)) == [True, True]


@pytest.mark.parametrize("options", [(), ("--requeue",), ("--mem=4G", "--time=60")])
def test_a_region_asking_no_reservation_keeps_off_reserved_nodes(
    options: tuple[str, ...],
) -> None:
    """``--re`` is ambiguous to sbatch (``--reboot``, ``--requeue``, ``--reservation``), and
    ``--requeue`` asks no reservation."""
    assert _qc_available(options) == [False, False]


@pytest.mark.parametrize(
    "options",
    [("--reservation=",), ("--mem=4G", "--res="), ("--reservation=maint", "--reservation=")],
)
def test_a_region_whose_last_reservation_is_empty_keeps_off_reserved_nodes(
    options: tuple[str, ...],
) -> None:
    """sbatch 22.05 takes ``--reservation=`` and Slurm reads it as no reservation (``sbatch
    --test-only --reservation=`` plans the job on any node; ``--reservation=nosuch`` is
    "Requested reservation is invalid"), the last one given replacing an earlier one; carbond
    read any ``--reservation=...`` as asking one and planned onto reserved GPUs the jobs
    could not start on (they waited, ``ReqNodeNotAvail``)."""
    assert all(refusal(option) is None for option in options)  # loads, as sbatch takes it
    assert _qc_available(options) == [False, False]


def test_a_region_whose_last_reservation_names_one_may_use_reserved_nodes() -> None:
    """An empty ``--reservation=`` before a named one is replaced by it, as sbatch reads it."""
    assert _qc_available(("--reservation=", "--res=maint")) == [True, True]
