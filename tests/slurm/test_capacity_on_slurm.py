"""What the planner is told about a partition's GPUs, read from the real local Slurm (``make
slurm-up`` first): nodes another group has reserved, GPUs others hold, a partition not up."""

from __future__ import annotations

import pwd
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from daemon.assemble import Daemon
from daemon.executors.base import LaunchSpec, RunHandle
from daemon.executors.slurm import SlurmExecutor, SubprocessRunner, Target
from daemon.ledger import TransitionRecord
from policies import Device
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.slurm.carbond_jobs import (
    FINAL,
    MovableForecast,
    append_queue,
    queue_line,
    tick,
    tick_until,
    unique_ids,
)
from tests.slurm.carbond_jobs import service as _service
from tests.slurm.cluster import SlurmCluster

service = _service  # the fixture: the service in-process, against the same real Slurm

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


def test_a_node_reserved_for_others_is_named_unavailable_once_and_available_after(
    slurm_cluster: SlurmCluster, reserved_n1: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """n1 reserved for the other user is unavailable to a region that asks no reservation,
    named so once (``slurm_node_unavailable``, state ``IDLE+RESERVED``, as a drained node is),
    and ``slurm_node_available`` once the reservation is deleted; not named for a region
    whose jobs go into the reservation (until 2026-12-07 no event named it at all, then
    not whose reservation it was)."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    plain = SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(), known_gpus=["T4"])
    into = {"qc": Target("alpha", sbatch_options=(f"--reservation={reserved_n1}",))}
    booked = SlurmExecutor(into, runner=SubprocessRunner(), known_gpus=["T4"])
    plain.discover("qc")
    booked.discover("qc")
    qc = _devices()[:2]
    with capture_logs() as logs:
        for _ in range(2):
            assert not any(d.available for d in plain.available(qc, datetime.now(UTC)))
            assert all(d.available for d in booked.available(qc, datetime.now(UTC)))
        slurm_cluster.run(["scontrol", "delete", f"ReservationName={reserved_n1}"])
        slurm_cluster.wait_until(lambda: "RESERVED" not in slurm_cluster.node_flags("n1"),
                                 what="n1 out of the reservation")  # fmt: skip
        assert all(d.available for d in plain.available(qc, datetime.now(UTC)))
        # n1 in no reservation is closed to jobs asking one (sbatch refuses them there)
        assert not any(d.available for d in booked.available(qc, datetime.now(UTC)))
    said = [(e["event"], e["node"], e["state"], e["regions"]) for e in logs
            if e["event"].startswith("slurm_node_")]  # fmt: skip
    assert said == [
        ("slurm_node_unavailable", "n1", "IDLE+RESERVED", ["qc"]),
        ("slurm_node_available", "n1", "IDLE", ["qc"]),
        ("slurm_node_unavailable", "n1", "IDLE", ["qc"]),
    ]
    # And whose reservation it is (scontrol show node does not say; show reservation does).
    assert next(e["reservations"] for e in logs if e["event"] == "slurm_node_unavailable") == [
        reserved_n1
    ]


@pytest.fixture
def two_reservations(slurm_cluster: SlurmCluster) -> Iterator[tuple[str, str]]:
    """Reservation A on n2 (beta) and B on n1 (alpha), both for the submitting user;
    deleted after."""
    names = ("carbond-test-a", "carbond-test-b")
    try:
        for name, node in zip(names, ("n2", "n1"), strict=True):
            slurm_cluster.run(["scontrol", "create", "reservation", f"ReservationName={name}",
                               "StartTime=now", "Duration=10", f"Nodes={node}",
                               f"Users={slurm_cluster.user}"])  # fmt: skip
        for node in ("n1", "n2"):
            slurm_cluster.wait_until(lambda n=node: "RESERVED" in slurm_cluster.node_flags(n),
                                     what=f"{node} reserved")  # fmt: skip
        yield names
    finally:
        for name in names:
            slurm_cluster.run(["scontrol", "delete", f"ReservationName={name}"], check=False)
        for node in ("n1", "n2"):
            slurm_cluster.wait_until(
                lambda n=node: "RESERVED" not in slurm_cluster.node_flags(n),
                what=f"{node} out of the reservations",
            )


def test_a_region_asking_one_reservation_keeps_off_a_node_reserved_for_another(
    slurm_cluster: SlurmCluster, two_reservations: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Jobs submitted into reservation A run on A's nodes only: Slurm refuses one on n1,
    reserved for B. carbond took a region asking any reservation as allowed on every reserved
    node, so n1's GPUs counted as capacity of a region submitting into A."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    a, _ = two_reservations
    refused = slurm_cluster.run(
        ["sbatch", "-p", "alpha", f"--reservation={a}", "--gres=gpu:1", "--wrap", "true"],
        user=slurm_cluster.user, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "Requested node configuration is not available" in refused.stderr
    targets = {"qc": Target("alpha", sbatch_options=(f"--reservation={a}",)),
               "pace": Target("beta", sbatch_options=(f"--reservation={a}",))}  # fmt: skip
    executor = SlurmExecutor(targets, runner=SubprocessRunner(), known_gpus=["T4", "L4"])
    executor.discover("qc")
    executor.discover("pace")
    for _ in range(2):  # right every round, not only the one that saw the change
        seen = {d.device_id: d.available
                for d in executor.available(_devices(), datetime.now(UTC))}  # fmt: skip
        assert seen == {"qc/0": False, "qc/1": False, "pace/0": True, "pace/1": True}


def test_a_region_whose_user_or_account_a_reservation_refuses_counts_none_of_its_nodes(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reservation for some users or accounts (``Users=``, ``Accounts=``): sbatch refuses
    a job of anyone else asking it, "Access denied to requested reservation", and so every
    job of a list naming it. carbond counted its nodes as capacity of any region asking it;
    now only of one whose submitting user (the daemon's own, where it is not root) and
    account may use it."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    made = {"for-user": f"Users={slurm_cluster.user}", "for-root-account": "Accounts=root"}
    try:
        for name, who in made.items():
            slurm_cluster.run(["scontrol", "create", "reservation", f"ReservationName={name}",
                               "StartTime=now", "Duration=10", "Nodes=n1", who,
                               "Flags=OVERLAP"])  # fmt: skip
        slurm_cluster.wait_until(lambda: "RESERVED" in slurm_cluster.node_flags("n1"),
                                 what="n1 reserved")  # fmt: skip
        for user, options in (
            (slurm_cluster.other_user, ["--reservation=for-user"]),
            (None, ["-A", "carbond", "--reservation=for-root-account"]),
            (slurm_cluster.user, ["-A", "carbond", "--reservation=for-user,for-root-account"]),
        ):
            refused = slurm_cluster.run(["sbatch", "--hold", "-p", "alpha", *options,
                                         "--gres=gpu:1", "--wrap", "true"],
                                        user=user, check=False)  # fmt: skip
            assert "Access denied to requested reservation" in refused.stderr, (options, refused)
        regions = {
            "user": (slurm_cluster.user, None, "for-user"),
            "other": (slurm_cluster.other_user, None, "for-user"),
            "anyone": (None, None, "for-user"),  # a root daemon: each job's owner
            "root-account": (None, "root", "for-root-account"),
            "carbond-account": (None, "carbond", "for-root-account"),
            "user-both": (slurm_cluster.user, "carbond", "for-user,for-root-account"),
            "user-no-account": (slurm_cluster.user, None, "for-user,for-root-account"),
        }
        seen = {}
        for region, (user, account, asked) in regions.items():
            target = Target("alpha", account=account, sbatch_options=(f"--reservation={asked}",))
            executor = SlurmExecutor({region: target}, runner=SubprocessRunner(),
                                     known_gpus=["T4"], submitter=user)  # fmt: skip
            executor.discover(region)
            devices = [Device(f"{region}/{i}", region, "CA-QC", DEFAULT_GPU_CATALOG.get("T4"))
                       for i in range(2)]  # fmt: skip
            with capture_logs() as logs:
                for _ in range(2):
                    seen[region] = {
                        d.available for d in executor.available(devices, datetime.now(UTC))
                    }
            denied = [e for e in logs if e["event"] == "slurm_reservation_denied"]
            assert len(denied) == (0 if seen[region] == {True} else 1), (region, logs)
        assert seen == {"user": {True}, "other": {False}, "anyone": {True},
                        "root-account": {True}, "carbond-account": {False},
                        "user-both": {False},
                        "user-no-account": {True}}  # fmt: skip  # its default account: unknown
    finally:
        for name in made:
            slurm_cluster.run(["scontrol", "delete", f"ReservationName={name}"], check=False)
        slurm_cluster.wait_until(lambda: "RESERVED" not in slurm_cluster.node_flags("n1"),
                                 what="n1 out of the reservations")  # fmt: skip


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


@pytest.mark.parametrize("state", ["DOWN", "INACTIVE"])
def test_a_partition_not_up_is_not_planned_onto(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster, state: str
) -> None:
    """An operator set partition alpha (region ``qc``, the cleaner one) ``State=DOWN`` in
    Slurm (``sinfo``: ``down``), its node idle: carbond still planned onto it and handed the
    job over, Slurm kept it ``PENDING`` (``PartitionDown``), carbond took it back after
    ``pending_grace_s`` and handed it to alpha again, round after round, the job never
    running while beta was free. A partition not up now makes its region's GPUs
    unavailable: the job runs in ``pace``, one that may only run in ``qc`` waits queued
    (not handed over), and runs there once the partition is up again."""
    daemon, _ = service
    slurm_cluster.run(["scontrol", "update", "PartitionName=alpha", f"State={state}"])
    anywhere, only_qc = unique_ids("anywhere", "onlyqc")
    with capture_logs() as logs:
        append_queue(daemon.settings.state_dir,
                     [queue_line(anywhere, ["true"], deadline="+1h"),
                      queue_line(only_qc, ["true"], deadline="+1h", regions=["qc"])])  # fmt: skip
        tick_until(slurm_cluster, daemon, "the job free to go anywhere final",
                   lambda: daemon.ledger.job(anywhere).state in FINAL)  # fmt: skip
        tick(daemon)

        assert daemon.ledger.job(anywhere).state == "succeeded"
        ran = slurm_cluster.wait_until(lambda: _sacct_rows(slurm_cluster, anywhere),
                                       what="sacct to list it")  # fmt: skip
        assert [r["partition"] for r in ran] == ["beta"]
        assert daemon.ledger.job(only_qc).state == "queued"
        assert _sacct_rows(slurm_cluster, only_qc) == []  # never handed to the down partition

        slurm_cluster.run(["scontrol", "update", "PartitionName=alpha", "State=UP"])
        tick_until(slurm_cluster, daemon, "the qc job final",
                   lambda: daemon.ledger.job(only_qc).state in FINAL)  # fmt: skip

    assert daemon.ledger.job(only_qc).state == "succeeded"
    said = [(e["event"], e.get("state")) for e in logs
            if e["event"] in ("slurm_partition_unavailable", "slurm_partition_up")]  # fmt: skip
    assert said == [("slurm_partition_unavailable", state), ("slurm_partition_up", None)]


def _sacct_rows(cluster: SlurmCluster, job_id: str) -> list[dict[str, str]]:
    """The Slurm jobs named after carbond job ``job_id``, with their partition."""
    out = cluster.run(["sacct", "-a", "-X", "-n", "-P", "-S", "now-1hours", "-E", "now",
                       f"--name=carbond-{job_id}", "-o", "JobID,Partition"]).stdout  # fmt: skip
    return [dict(zip(("id", "partition"), line.split("|"), strict=True))
            for line in out.splitlines()]  # fmt: skip


def test_a_gpu_a_user_added_to_their_carbond_job_is_busy_and_charged(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job's owner may ``scontrol update`` their own planned job (``Gres=gpu:t4:2``, then
    ``StartTime=now``): Slurm runs it on two GPUs. carbond counted its own job's GPUs from its
    plan (one): the second looked free to the planner, and the run was charged one GPU's
    embodied carbon. It now reads the GPUs Slurm gave it (squeue's tres-per-node/tres-alloc),
    counts the extra one busy, logs the change once, and charges the GPUs it held."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(),
                             known_gpus=["T4"])  # fmt: skip
    executor.discover("qc")
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / "logs"
    job = f"regres-{uuid.uuid4().hex[:8]}"
    spec = LaunchSpec(job, ("sleep", "4"), owner.pw_uid, owner.pw_gid, (0,), logs, region="qc",
                      device_ids=("qc/0",))  # fmt: skip
    now = datetime.now(UTC)
    held = executor.hold(spec, now + timedelta(hours=1), "", now)
    slurm_id = held.token.split('"')[3]
    for change in ("Gres=gpu:t4:2", "StartTime=now"):  # the owner's, not carbond's
        slurm_cluster.run(["scontrol", "update", f"JobId={slurm_id}", change],
                          user=slurm_cluster.user)  # fmt: skip
    slurm_cluster.wait_until(lambda: slurm_cluster.job_state(int(slurm_id)) == "RUNNING",
                             what="the job to run on its owner's two GPUs")  # fmt: skip
    t4 = DEFAULT_GPU_CATALOG.get("T4")
    now = datetime.now(UTC)
    mine = Device("qc/0", "qc", "CA-QC", t4, busy_until=now + timedelta(hours=1))  # its plan
    devices = [mine, Device("qc/1", "qc", "CA-QC", t4)]

    with capture_logs() as logs_seen:
        marked = executor.available(devices, now)
        executor.available(devices, now)  # logged once

    assert marked[1].busy_until is not None and marked[1].busy_until > now
    changed = [e for e in logs_seen if e["event"] == "slurm_job_changed_outside"]
    assert [(e["job_id"], e["slurm_id"], e["field"], e["planned"], e["actual"])
            for e in changed] == [(job, slurm_id, "gres/gpu", 1, 2)]  # fmt: skip
    slurm_cluster.wait_for_job_end(int(slurm_id))
    handle = RunHandle(job, "slurm", held.token, now, uid=owner.pw_uid, gpus=1)
    [status] = slurm_cluster.wait_until(
        lambda: executor.poll([handle], datetime.now(UTC) + timedelta(seconds=10)),
        what="the job's end in sacct",
    )
    assert status.exit_code == 0 and status.gpus == 2
    assert status.reason.endswith(
        "; it held 2 GPUs, not the 1 planned (its Slurm job's GRES changed outside carbond)"
    )


def test_a_partition_set_down_while_its_states_are_kept_is_noticed_by_a_job_pending_there(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partition states all up are kept a minute, not read every round. An operator sets
    alpha ``State=DOWN`` within that minute: carbond's job released there waits
    ``PartitionDown`` in squeue, and the next round reads the states again: qc's GPUs are
    unavailable (``slurm_partition_unavailable``), not planned onto for the rest of the
    minute."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(),
                             known_gpus=["T4"])  # fmt: skip
    executor.discover("qc")
    start = datetime.now(UTC)
    assert all(d.available for d in executor.available(_devices()[:2], start))  # kept now
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / "logs"
    spec = LaunchSpec(f"down-{uuid.uuid4().hex[:8]}", ("true",), owner.pw_uid, owner.pw_gid,
                      (0,), logs, region="qc", device_ids=("qc/0",))  # fmt: skip
    slurm_cluster.run(["scontrol", "update", "PartitionName=alpha", "State=DOWN"])
    try:
        handle = executor.launch(spec, datetime.now(UTC))
        slurm_id = int(handle.token.split('"')[3])
        assert all(d.available for d in executor.available(_devices()[:2], start))  # kept

        def pending_down() -> bool:
            assert executor.poll([handle], datetime.now(UTC)) == []
            reason = slurm_cluster.run(["squeue", "-h", "-j", str(slurm_id), "-o", "%r"]).stdout
            return reason.strip() == "PartitionDown"

        slurm_cluster.wait_until(pending_down, what="carbond's job to wait PartitionDown")
        executor.poll([handle], datetime.now(UTC))  # the poll that reads it so
        with capture_logs() as seen:
            marked = executor.available(_devices()[:2], start + timedelta(seconds=1))
    finally:
        slurm_cluster.run(["scontrol", "update", "PartitionName=alpha", "State=UP"])

    assert [d.available for d in marked] == [False, False]
    assert [(e["event"], e["state"]) for e in seen
            if e["event"] == "slurm_partition_unavailable"] == [
        ("slurm_partition_unavailable", "DOWN")]  # fmt: skip


def test_a_partition_drained_while_its_states_are_kept_makes_a_launch_there_wait_not_fail(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster
) -> None:
    """Partition states all up are kept a minute. An operator sets alpha ``State=DRAIN``
    within it, and a job that may only run in ``qc`` arrives: carbond, its kept state saying
    UP, hands it to alpha at once, and sbatch refuses it there. It failed ('launch failed:
    job ID: sbatch refused it: ...'). sbatch's refusal now has alpha's state read at once:
    DRAIN, so the job waits queued, its reason saying why, is not handed to alpha again
    while it is drained, and runs there once it is up."""
    daemon, _ = service
    warm, job = unique_ids("warm", "drained")
    append_queue(
        daemon.settings.state_dir, [queue_line(warm, ["true"], deadline="+1h", regions=["qc"])]
    )
    tick_until(slurm_cluster, daemon, "a first job in qc final",
               lambda: daemon.ledger.job(warm).state in FINAL)  # fmt: skip
    assert daemon.ledger.job(warm).state == "succeeded"  # alpha read UP: kept for the minute
    slurm_cluster.run(["scontrol", "update", "PartitionName=alpha", "State=DRAIN"])
    try:
        append_queue(daemon.settings.state_dir,
                     [queue_line(job, ["true"], deadline="+1h", regions=["qc"])])  # fmt: skip
        refused = tick_until(slurm_cluster, daemon, "the launch to be refused",
                             lambda: _after_running(daemon, job))  # fmt: skip
        tick(daemon)  # alpha read again: qc unavailable, the job not handed over
        tick(daemon)
        waiting = daemon.ledger.job(job).state
        attempts = [t.to_state for t in daemon.ledger.transitions(job)].count("running")
    finally:
        slurm_cluster.run(["scontrol", "update", "PartitionName=alpha", "State=UP"])

    assert (refused.from_state, refused.to_state) == ("running", "queued")
    assert refused.reason.startswith(f"requeued: slurm takes no jobs in its region now (job {job}:"
                                     " sbatch refused it: ")  # fmt: skip
    assert "partition alpha is DRAIN now: the job waits, planned again" in refused.reason
    assert (waiting, attempts) == ("queued", 1)
    tick_until(
        slurm_cluster, daemon, "the job final", lambda: daemon.ledger.job(job).state in FINAL
    )
    assert daemon.ledger.job(job).state == "succeeded"


def _after_running(daemon: Daemon, job: str) -> TransitionRecord | None:
    """``job``'s first transition out of ``running`` (None while there is none)."""
    return next((t for t in daemon.ledger.transitions(job) if t.from_state == "running"), None)
