"""A node of a carbond region that becomes unavailable (drained, draining, down, not
responding) is named in the log once per change (``slurm_node_unavailable``, with its state
and the reason Slurm gives) and when it is back (``slurm_node_available``): before, only its
held jobs' withdrawals (``slurm_job_withdrawn``) and a generic job reason showed it."""

from __future__ import annotations

from structlog.testing import capture_logs

from daemon.executors.slurm import SlurmExecutor, Target
from daemon.executors.slurm.scontrol import parse_nodes
from policies import Device
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.executors.fake_slurm import RECORDED, T0, FakeSlurm, slurm_executor

STATES = RECORDED / "states"
DRAINING = (STATES / "scontrol_show_node_draining.txt").read_text()  # n1 MIXED+DRAIN
DRAINED = (STATES / "scontrol_show_node_drained.txt").read_text()  # n1 IDLE+DRAIN, n2 DOWN
DOWN = (STATES / "scontrol_show_node_down.txt").read_text()  # n1 MIXED+DRAIN, n2 DOWN
# scontrol --oneliner show reservation of one active reservation on n1 and one to come on
# n[1-2] (as Slurm 22.05 printed them on the local cluster, names and times changed)
RESERVATIONS = (
    "ReservationName=carbond-ops StartTime=2026-12-04T20:55:00 EndTime=2026-12-04T21:05:00 "
    "Duration=00:10:00 Nodes=n1 NodeCnt=1 CoreCnt=8 Features=(null) PartitionName=(null) "
    "Flags=SPEC_NODES TRES=cpu=8 Users=carbond-slurm-other Groups=(null) Accounts=(null) "
    "Licenses=(null) State=ACTIVE BurstBuffer=(null) Watts=n/a MaxStartDelay=(null)\n"
    "ReservationName=later StartTime=2026-12-05T21:00:00 EndTime=2026-12-05T22:00:00 "
    "Duration=01:00:00 Nodes=n[1-2] NodeCnt=2 CoreCnt=16 Features=(null) PartitionName=(null) "
    "Flags=MAINT,SPEC_NODES TRES=cpu=16 Users=root Groups=(null) Accounts=(null) "
    "Licenses=(null) State=INACTIVE BurstBuffer=(null) Watts=n/a MaxStartDelay=(null)\n"
)


def _devices() -> list[Device]:
    t4, l4 = DEFAULT_GPU_CATALOG.get("T4"), DEFAULT_GPU_CATALOG.get("L4")
    return [Device(f"qc/{i}", "qc", "CA-QC", t4) for i in range(2)] + [
        Device(f"pace/{i}", "pace", "US-NW-PACE", l4) for i in range(2)
    ]


def _reason(text: str, node: str) -> str:
    return next(n.reason for n in parse_nodes(text) if n.name == node)


def test_a_node_unavailable_is_logged_once_per_change_and_when_it_is_back() -> None:
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    up = slurm.nodes

    with capture_logs() as logs:
        rounds = []
        for text in (up, DRAINING, DRAINING, DRAINED, DOWN, up, up):
            slurm.nodes = text
            rounds.append([d.available for d in executor.available(_devices(), T0)])

    assert rounds == [
        [True] * 4, [False, False, True, True], [False, False, True, True],
        [False] * 4, [False] * 4, [True] * 4, [True] * 4,
    ]  # fmt: skip
    said = [
        (e["event"], e["node"], e.get("state"), e.get("reason"), e.get("regions"))
        for e in logs if e["event"].startswith("slurm_node_")
    ]  # fmt: skip
    assert said == [
        ("slurm_node_unavailable", "n1", "MIXED+DRAIN", _reason(DRAINING, "n1"), ["qc"]),
        # IDLE+DRAIN (drained now) is the same DRAIN: not again
        ("slurm_node_unavailable", "n2", "DOWN+NOT_RESPONDING", _reason(DRAINED, "n2"),
         ["pace"]),
        ("slurm_node_available", "n1", "IDLE", None, ["qc"]),
        ("slurm_node_available", "n2", "MIXED", None, ["pace"]),
    ]  # fmt: skip
    assert [e["log_level"] for e in logs if e["event"] == "slurm_node_unavailable"] == [
        "warning", "warning"]  # fmt: skip


def test_a_node_gone_from_slurm_is_unavailable_and_named() -> None:
    """A node of a region's layout that ``scontrol show node`` no longer lists has no GPUs to
    run on (as :func:`~daemon.executors.slurm.capacity.mark_devices` has it): named too."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    up = slurm.nodes
    only_n2 = "\n".join(line for line in up.splitlines() if line.startswith("NodeName=n2"))
    with capture_logs() as logs:
        for text in (only_n2, only_n2, up):
            slurm.nodes = text
            executor.available(_devices(), T0)
    said = [(e["event"], e["node"], e.get("state")) for e in logs
            if e["event"].startswith("slurm_node_")]  # fmt: skip
    assert said == [
        ("slurm_node_unavailable", "n1", "not in Slurm"),
        ("slurm_node_available", "n1", "IDLE"),
    ]


def _reserved_n1(up: str) -> str:
    """``up`` with n1 idle in an active reservation (``scontrol create reservation ...
    Nodes=n1``: ``State=IDLE+RESERVED``, no reason, as Slurm 22.05 printed it on the local
    cluster)."""
    lines = up.splitlines()
    out = [line.replace(" State=IDLE ", " State=IDLE+RESERVED ") if line.startswith(
        "NodeName=n1 ") else line for line in lines]  # fmt: skip
    return "\n".join(out) + "\n"


def test_a_node_reserved_for_others_is_unavailable_and_named_for_the_regions_it_keeps_out() -> None:
    """A node in an active reservation (``RESERVED``: a maintenance window, another group's
    booking) runs no job of a region that asks for no reservation, so it is unavailable to it
    (docs/slurm.md), and is named as a drained node is, once, and when the reservation ends;
    it used to get no event. (Regions asking a reservation:
    tests/daemon/executors/test_slurm_reservation.py.)"""
    slurm = FakeSlurm()
    executor = SlurmExecutor(
        {"qc": Target("alpha"), "pace": Target("beta")},
        runner=slurm,
        known_gpus=DEFAULT_GPU_CATALOG.names(),
    )
    executor.discover("qc"), executor.discover("pace")
    up = slurm.nodes
    reserved = _reserved_n1(up)
    assert [n.state for n in parse_nodes(reserved)] == [("IDLE", "RESERVED"), ("MIXED",)]
    slurm.reservations = RESERVATIONS
    with capture_logs() as logs:
        rounds = []
        for text in (up, reserved, reserved, up):
            slurm.nodes = text
            rounds.append([d.available for d in executor.available(_devices(), T0)])
    said = [(e["event"], e["node"], e.get("state"), e.get("reason"), e.get("regions"))
            for e in logs if e["event"].startswith("slurm_node_")]  # fmt: skip
    asked = [c for c in slurm.calls if "reservation" in c]
    named = ["qc"]
    assert rounds == [[True] * 4, [False, False, True, True], [False, False, True, True],
                      [True] * 4]  # fmt: skip
    assert said == [
        ("slurm_node_unavailable", "n1", "IDLE+RESERVED", _reason(reserved, "n1"), named),
        ("slurm_node_available", "n1", "IDLE", None, named),
    ]
    # Whose reservation keeps it is named too, asked once: for the change, not every round.
    unavailable = next(e for e in logs if e["event"] == "slurm_node_unavailable")
    assert unavailable["reservations"] == ["carbond-ops"]
    assert asked == [("scontrol", "--oneliner", "show", "reservation")]


def test_a_reserved_node_whose_reservations_cannot_be_read_is_named_all_the_same() -> None:
    """``scontrol show reservation`` failing leaves the reservation unknown (None, and
    ``slurm_reservations_unread``); the node is named unavailable as before."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    slurm.reservations_error = "scontrol: error: Socket timed out\n"
    slurm.nodes = _reserved_n1(slurm.nodes)
    with capture_logs() as logs:
        assert [d.available for d in executor.available(_devices(), T0)] == [
            False, False, True, True]  # fmt: skip
    said = [(e["event"], e.get("node"), e.get("reservations")) for e in logs
            if e["event"] in {"slurm_node_unavailable", "slurm_reservations_unread"}]  # fmt: skip
    assert said == [("slurm_reservations_unread", None, None),
                    ("slurm_node_unavailable", "n1", None)]  # fmt: skip
