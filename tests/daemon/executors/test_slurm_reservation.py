"""A Slurm region whose jobs ask for a reservation may plan onto the nodes of that reservation,
and only those, in each spelling of ``--reservation`` that the config takes and sbatch reads
(against the fake Slurm of :mod:`tests.daemon.executors.fake_slurm`)."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from daemon.executors.slurm import SlurmExecutor, Target
from daemon.executors.slurm.scontrol import active_by_node, parse_reservations
from daemon.settings.sbatch_options import refusal
from policies import Device
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.executors.fake_slurm import RECORDED, T0, FakeSlurm

_NODES = (RECORDED / "scontrol_nodes_drained.txt").read_text()
# n1 (alpha's two T4s) idle in an active reservation, as scontrol prints it during one
_RESERVED = _NODES.replace("MIXED+DRAIN", "IDLE+RESERVED")
_UNRESERVED = _NODES.replace("MIXED+DRAIN", "IDLE")


def _reservation(name: str, nodes: str, state: str = "ACTIVE") -> str:
    """One line of ``scontrol --oneliner show reservation`` (as Slurm 22.05 printed it on the
    local cluster, name, nodes and state changed)."""
    return (
        f"ReservationName={name} StartTime=2026-12-04T20:55:00 EndTime=2026-12-04T21:25:00 "
        f"Duration=00:30:00 Nodes={nodes} NodeCnt=1 CoreCnt=8 Features=(null) "
        "PartitionName=(null) Flags=SPEC_NODES TRES=cpu=8 Users=root Groups=(null) "
        f"Accounts=(null) Licenses=(null) State={state} BurstBuffer=(null) Watts=n/a "
        "MaxStartDelay=(null)\n"
    )


_MAINT_ON_N1 = _reservation("maint", "n1")


def _qc_available(
    options: tuple[str, ...], nodes: str = _RESERVED, reservations: str = _MAINT_ON_N1
) -> list[bool]:
    """Whether each of region ``qc``'s GPUs (partition alpha, node n1) is available, with
    ``options`` as its ``sbatch_options``, Slurm's nodes ``nodes`` and its reservations
    ``reservations``."""
    slurm = FakeSlurm(nodes=nodes, reservations=reservations)
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


@pytest.mark.parametrize("options", [("--reservation=maint",), ("--res=gone,maint",)])
def test_a_region_asking_a_reservation_keeps_off_nodes_reserved_for_another(
    options: tuple[str, ...],
) -> None:
    """A job submitted into reservation ``maint`` runs only on ``maint``'s nodes: on the
    local cluster (Slurm 22.05), with ``maint`` on n2 and ``other`` on n1, ``sbatch -p alpha
    --reservation=maint`` is refused ("Requested node configuration is not available").
    carbond took a region asking any reservation as allowed on every reserved node, so n1's
    GPUs, reserved for another, counted as its capacity."""
    others = _reservation("other", "n1") + _reservation("maint", "n2")
    assert _qc_available(options, reservations=others) == [False, False]
    # a list of reservations (sbatch 22.05 takes one, comma-separated): any of them will do
    mine = _reservation("other", "n2") + _reservation("maint", "n1")
    assert _qc_available(options, reservations=mine) == [True, True]


def test_a_region_asking_a_reservation_keeps_off_nodes_in_none() -> None:
    """n1 in no reservation, ``maint`` active on n2 or to come on n1: Slurm refuses ``sbatch
    -p alpha --reservation=maint`` in the first case, and keeps the job pending (``Reason=
    Reservation``) until ``maint`` starts in the second (both seen on the local cluster), so
    n1's GPUs are not the region's capacity."""
    active_elsewhere = _reservation("maint", "n2")
    to_come = _reservation("maint", "n1", state="INACTIVE")
    for reservations in (active_elsewhere, to_come):
        assert _qc_available(("--reservation=maint",), _UNRESERVED, reservations) == [
            False, False]  # fmt: skip
    assert _qc_available((), _UNRESERVED, active_elsewhere) == [True, True]


def test_whose_reservation_a_node_is_in_is_read_each_round_it_matters() -> None:
    """The reservations are read every round in which a region asking one has a reserved
    node, once for the whole cluster (a node may pass from one reservation straight to
    another, staying ``RESERVED``); not at all while none of its nodes is reserved. Where
    they cannot be read, the region's reserved nodes are not its capacity that round."""
    slurm = FakeSlurm(nodes=_UNRESERVED, reservations=_MAINT_ON_N1)
    executor = SlurmExecutor(
        {"qc": Target("alpha", sbatch_options=("--reservation=maint",)), "pace": Target("beta")},
        runner=slurm,
        known_gpus=DEFAULT_GPU_CATALOG.names(),
    )
    executor.discover("qc")
    devices = [Device(f"qc/{i}", "qc", "Z", DEFAULT_GPU_CATALOG.get("T4")) for i in range(2)]
    seen = []
    for nodes, reservations in [
        (_UNRESERVED, _MAINT_ON_N1),
        (_RESERVED, _MAINT_ON_N1),
        (_RESERVED, _reservation("other", "n1")),  # maint ended, other began: still RESERVED
        (_RESERVED, _MAINT_ON_N1),
    ]:
        slurm.nodes, slurm.reservations, slurm.calls = nodes, reservations, []
        available = [d.available for d in executor.available(devices, T0)]
        seen.append((available, sum("reservation" in c for c in slurm.calls)))
    slurm.reservations_error = "scontrol: error: Socket timed out\n"
    assert [d.available for d in executor.available(devices, T0)] == [False, False]
    assert seen == [
        ([False, False], 0),
        ([True, True], 1),
        ([False, False], 1),
        ([True, True], 1),
    ]


def test_a_node_closed_to_a_region_by_reservations_is_named_for_it() -> None:
    """n1 reserved for ``other`` (``RESERVED``), then in no reservation (``not in the
    reservation``), closes it to a region asking ``maint``: named ``slurm_node_unavailable``
    once per change, as for a region asking none, and available once ``maint`` is on it."""
    slurm = FakeSlurm(nodes=_RESERVED, reservations=_reservation("other", "n1"))
    executor = SlurmExecutor(
        {"qc": Target("alpha", sbatch_options=("--reservation=maint",))},
        runner=slurm,
        known_gpus=DEFAULT_GPU_CATALOG.names(),
    )
    executor.discover("qc")
    devices = [Device(f"qc/{i}", "qc", "Z", DEFAULT_GPU_CATALOG.get("T4")) for i in range(2)]
    with capture_logs() as logs:
        for nodes, reservations in [
            (_RESERVED, _reservation("other", "n1")),
            (_RESERVED, _reservation("other", "n1")),
            (_UNRESERVED, ""),
            (_RESERVED, _MAINT_ON_N1),
        ]:
            slurm.nodes, slurm.reservations = nodes, reservations
            executor.available(devices, T0)
    said = [(e["event"], e["state"], e["regions"], e.get("reservations")) for e in logs
            if e["event"].startswith("slurm_node_")]  # fmt: skip
    assert said == [
        ("slurm_node_unavailable", "IDLE+RESERVED", ["qc"], ["other"]),
        ("slurm_node_unavailable", "IDLE", ["qc"], []),
        ("slurm_node_available", "IDLE+RESERVED", ["qc"], None),
    ]


def test_who_may_use_a_reservation_is_read_from_its_users_and_accounts() -> None:
    """``Users=``/``Accounts=`` as Slurm 22.05 printed them on the local cluster; both
    given, a job must pass both (sbatch refused a user not in ``Users=`` whose account was
    in ``Accounts=``); ``Users=-bob``: anyone but bob; a name not known is not judged."""
    line = _reservation("r", "n[1-2]").replace("Users=root", "Users=alice,bob")
    [r] = parse_reservations(line.replace("Accounts=(null)", "Accounts=ops"))
    assert (r.name, r.active, r.nodes, r.users, r.accounts) == (
        "r", True, ("n1", "n2"), ("alice", "bob"), ("ops",))  # fmt: skip
    who = [("alice", "ops"), ("carol", "ops"), ("alice", "x"), (None, "ops"), ("alice", None)]
    assert [r.admits(*w) for w in who] == [True, False, False, None, None]
    [anyone] = parse_reservations(line.replace("Users=alice,bob", "Users=-bob"))
    assert [anyone.admits("alice", None), anyone.admits("bob", None)] == [True, False]
    [later] = parse_reservations(_reservation("later", "n1", state="INACTIVE"))
    assert later.users == ("root",) and not later.active
    assert active_by_node([r, later]) == {"n1": ("r",), "n2": ("r",)}
