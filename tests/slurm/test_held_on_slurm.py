"""A planned job carbond holds in Slurm (``--begin``) that its owner or an admin ``scancel``s
while it is still pending never ran: carbond must not record it as a run (``make slurm-up``
first). squeue's start of such a job is the time it was cancelled."""

from __future__ import annotations

import pwd
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from daemon.assemble import Daemon
from daemon.executors.base import EndedUnstarted, LaunchSpec, RunHandle
from daemon.executors.errors import HeldJobEndedError
from daemon.executors.slurm import SlurmExecutor, SubprocessRunner, Target
from tests.slurm.carbond_jobs import (
    MovableForecast,
    append_queue,
    queue_line,
    squeue_jobs,
    tick_until,
    unique_ids,
)
from tests.slurm.carbond_jobs import service as _service
from tests.slurm.cluster import SlurmCluster

service = _service  # the fixture: a service in-process (jobs owned by root), on the real Slurm

pytestmark = pytest.mark.slurm


@pytest.mark.parametrize("by_owner", [True, False], ids=["owner", "admin"])
def test_a_held_job_cancelled_pending_in_slurm_is_reported_ended_unstarted(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch, by_owner: bool
) -> None:
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(), known_gpus=["T4"])
    executor.discover("qc")
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / "logs"
    job = f"held-{uuid.uuid4().hex[:8]}"
    spec = LaunchSpec(job, ("true",), owner.pw_uid, owner.pw_gid, (0,), logs, region="qc",
                      device_ids=("qc/0",))  # fmt: skip
    now = datetime.now(UTC)
    held = executor.hold(spec, now + timedelta(hours=1), "", now)
    slurm_id = held.token.split('"')[3]
    slurm_cluster.run(["scancel", slurm_id], user=slurm_cluster.user if by_owner else None)
    slurm_cluster.wait_until(
        lambda: slurm_cluster.job_state(int(slurm_id)).startswith("CANCELLED"),
        what="sacct to have the cancel",
    )
    canceller = owner.pw_uid if by_owner else 0
    ended = EndedUnstarted(f"slurm CANCELLED by uid {canceller}", by_owner)
    now = datetime.now(UTC)

    assert executor.hold(spec, now + timedelta(hours=2), held.token, now) == held.__class__(
        held.token, ended=ended
    )  # not started, not resubmitted
    assert executor.withdraw(job, held.token, now, uid=owner.pw_uid) == held.__class__(
        held.token, ended=ended
    )
    with pytest.raises(HeldJobEndedError, match=f"Slurm job {slurm_id} ended before it started"):
        executor.release(spec, held.token, now)
    assert [r["id"] for r in squeue_jobs(slurm_cluster, [job])] == [slurm_id]  # none submitted


@pytest.mark.parametrize("then", ["moved", "released"])
def test_a_planned_job_its_owner_cancels_in_slurm_is_cancelled_without_a_run(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster, then: str
) -> None:
    daemon, forecast = service
    [job] = unique_ids("scancelled")
    now = datetime.now(UTC)
    forecast.dip = ("CA-QC", now + timedelta(hours=1), now + timedelta(hours=2), 10.0)
    append_queue(daemon.settings.state_dir,
                 [queue_line(job, ["sleep", "1"], deadline="+3h", regions=["qc"])])  # fmt: skip
    [row] = tick_until(slurm_cluster, daemon, "the job held in squeue",
                       lambda: squeue_jobs(slurm_cluster, [job], "PENDING"))  # fmt: skip
    assert daemon.ledger.job(job).state == "planned"
    slurm_cluster.run(["scancel", row["id"]])  # its owner (root, who wrote the queue line)
    slurm_cluster.wait_until(
        lambda: slurm_cluster.job_state(int(row["id"])).startswith("CANCELLED"),
        what="sacct to have the cancel",
    )
    if then == "moved":  # a new plan for later: carbond moves the held job
        forecast.dip = ("CA-QC", now + timedelta(hours=2), now + timedelta(hours=3), 10.0)
    else:  # the cleanest time is now: carbond releases it
        forecast.dip = ("CA-QC", now - timedelta(hours=1), now + timedelta(hours=3), 1.0)

    tick_until(slurm_cluster, daemon, "the job final",
               lambda: daemon.ledger.job(job).state not in ("queued", "planned"))  # fmt: skip

    record = daemon.ledger.job(job)
    assert record.state == "cancelled"  # never "running", nor "failed" with 0 J
    last = daemon.ledger.transitions(job)[-1]
    assert last.reason == (
        "ended in its executor by its owner before it started (slurm CANCELLED by uid 0)"
    )
    if then == "moved":  # a release writes the run ahead (running), then drops it at once
        assert [t.to_state for t in daemon.ledger.transitions(job)][-2:] == [
            "planned",
            last.to_state,
        ]
    assert daemon.ledger.run(job) is None and daemon.ledger.outcome(job) is None
    assert [r["id"] for r in squeue_jobs(slurm_cluster, [job])] == [row["id"]]  # not resubmitted


@pytest.mark.parametrize("by_owner", [True, False], ids=["owner", "admin"])
def test_held_jobs_slurm_ended_unstarted_are_told_between_plans(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch, by_owner: bool
) -> None:
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(), known_gpus=["T4"])
    executor.discover("qc")
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / "logs"
    held, handles = {}, []
    now = datetime.now(UTC)
    for name in ("gone", "kept"):
        job = f"{name}-{uuid.uuid4().hex[:8]}"
        spec = LaunchSpec(job, ("true",), owner.pw_uid, owner.pw_gid, (0,), logs, region="qc",
                          device_ids=("qc/0",))  # fmt: skip
        held[name] = executor.hold(spec, now + timedelta(hours=1), "", now)
        handles.append(RunHandle(job, "slurm", held[name].token, now, uid=owner.pw_uid))
    assert executor.ended_held(handles, now) == {}  # both pending in Slurm
    slurm_id = held["gone"].token.split('"')[3]
    slurm_cluster.run(["scancel", slurm_id], user=slurm_cluster.user if by_owner else None)
    slurm_cluster.wait_until(
        lambda: slurm_cluster.job_state(int(slurm_id)).startswith("CANCELLED"),
        what="sacct to have the cancel",
    )
    canceller = owner.pw_uid if by_owner else 0

    assert executor.ended_held(handles, datetime.now(UTC)) == {
        handles[0].job_id: EndedUnstarted(f"slurm CANCELLED by uid {canceller}", by_owner)
    }
    executor.withdraw(handles[1].job_id, held["kept"].token, now, uid=owner.pw_uid)


def test_a_held_job_its_owner_cancels_in_slurm_ends_while_its_plan_stays_the_same(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster
) -> None:
    daemon, forecast = service
    [job] = unique_ids("watched")
    now = datetime.now(UTC)
    forecast.dip = ("CA-QC", now + timedelta(hours=1), now + timedelta(hours=2), 10.0)
    append_queue(daemon.settings.state_dir,
                 [queue_line(job, ["sleep", "1"], deadline="+3h", regions=["qc"])])  # fmt: skip
    [row] = tick_until(slurm_cluster, daemon, "the job held in squeue",
                       lambda: squeue_jobs(slurm_cluster, [job], "PENDING"))  # fmt: skip
    assert daemon.ledger.job(job).state == "planned"
    slurm_cluster.run(["scancel", row["id"]])  # its owner (root, who wrote the queue line)
    slurm_cluster.wait_until(
        lambda: slurm_cluster.job_state(int(row["id"])).startswith("CANCELLED"),
        what="sacct to have the cancel",
    )

    # the same forecast: the plan does not move, yet the next rounds see the cancel
    tick_until(slurm_cluster, daemon, "the job final",
               lambda: daemon.ledger.job(job).state not in ("queued", "planned"))  # fmt: skip

    assert daemon.ledger.job(job).state == "cancelled"
    assert daemon.ledger.transitions(job)[-1].reason == (
        "ended in its executor by its owner before it started (slurm CANCELLED by uid 0)"
    )
    assert daemon.ledger.run(job) is None and daemon.ledger.outcome(job) is None
    assert [r["id"] for r in squeue_jobs(slurm_cluster, [job])] == [row["id"]]  # not resubmitted


def test_a_held_job_whose_run_token_is_unreadable_is_moved_released_and_withdrawn_by_name(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A held job whose ledger run token cannot be read (hand-edited, cut short) could be
    neither moved, released nor withdrawn (``unreadable slurm run token``, every round), so
    a cancelled planned job stayed held and would start at its planned time. Its Slurm job
    is now found by its name ``carbond-<id>`` among its owner's jobs only: a move updates
    that one's start and hands back its token, a release starts it, a withdrawal cancels it;
    another user's pending job of the same name, newer, is never touched."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(), known_gpus=["T4"])
    executor.discover("qc")
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / "logs"
    cut = '{"slurm_id": '  # the ledger's token, cut short
    now = datetime.now(UTC)
    specs = {
        name: LaunchSpec(f"{name}-{uuid.uuid4().hex[:8]}", ("true",), owner.pw_uid,
                         owner.pw_gid, (0,), logs, region="qc", device_ids=("qc/0",))
        for name in ("moved", "withdrawn")
    }  # fmt: skip
    held = {n: executor.hold(s, now + timedelta(hours=1), "", now) for n, s in specs.items()}
    ids = {n: h.token.split('"')[3] for n, h in held.items()}
    decoys = [
        str(slurm_cluster.sbatch("-p", "alpha", "--begin=now+1hour",
                                 f"--job-name=carbond-{s.job_id}", wrap="true",
                                 user=slurm_cluster.other_user))
        for s in specs.values()
    ]  # fmt: skip
    jobs = [s.job_id for s in specs.values()]

    def start(slurm_id: str) -> datetime:  # squeue's start (its local time: only differences)
        row = next(r for r in squeue_jobs(slurm_cluster, jobs) if r["id"] == slurm_id)
        return datetime.strptime(row["start"], "%Y-%m-%dT%H:%M:%S")

    planned = start(ids["moved"])
    moved = executor.hold(specs["moved"], now + timedelta(hours=2), cut, now)
    assert (moved.token, moved.started_at, moved.ended) == (held["moved"].token, None, None)
    assert abs(start(ids["moved"]) - planned - timedelta(hours=1)) <= timedelta(seconds=1)

    handle = executor.release(specs["moved"], cut, datetime.now(UTC))
    assert handle.token == held["moved"].token
    slurm_cluster.wait_until(lambda: slurm_cluster.job_state(int(ids["moved"])) == "COMPLETED",
                             what="the released job to run")  # fmt: skip

    assert executor.withdraw(jobs[1], cut, datetime.now(UTC), uid=owner.pw_uid) is None
    slurm_cluster.wait_until(
        lambda: slurm_cluster.job_state(int(ids["withdrawn"])).startswith("CANCELLED"),
        what="the withdrawn job cancelled",
    )
    states = {r["id"]: (r["state"], r["reason"]) for r in squeue_jobs(slurm_cluster, jobs)}
    assert [states.get(d) for d in decoys] == [("PENDING", "BeginTime")] * 2  # others' untouched


def test_a_held_job_s_start_its_owner_moves_in_slurm_is_logged_once_per_change(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The owner of a job carbond holds moves its start (``scontrol update StartTime=``):
    carbond logged nothing, and its users saw a start it had not planned. Each change is
    now logged once by the watching between plans (``slurm_job_changed_outside``, field
    ``StartTime``, planned and actual); moved back to the plan, nothing more is said."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(), known_gpus=["T4"])
    executor.discover("qc")
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / "logs"
    job = f"moved-{uuid.uuid4().hex[:8]}"
    spec = LaunchSpec(job, ("true",), owner.pw_uid, owner.pw_gid, (0,), logs, region="qc",
                      device_ids=("qc/0",))  # fmt: skip
    now = datetime.now(UTC).replace(microsecond=0)
    planned = now + timedelta(hours=1)
    held = executor.hold(spec, planned, "", now)
    slurm_id = held.token.split('"')[3]
    handle = RunHandle(job, "slurm", held.token, now, uid=owner.pw_uid)

    def moved_to(start: datetime) -> list[tuple[str, str]]:
        """Its owner moves it to ``start``; what two watches then log of it."""
        slurm_cluster.run(["scontrol", "update", f"JobId={slurm_id}",
                           f"StartTime={start.strftime('%Y-%m-%dT%H:%M:%S')}"],
                          user=slurm_cluster.user)  # fmt: skip
        with capture_logs() as logs_seen:
            for _ in range(2):
                assert executor.ended_held([handle], datetime.now(UTC)) == {}
        return [
            (e["planned"], e["actual"])
            for e in logs_seen
            if e["event"] == "slurm_job_changed_outside" and e["field"] == "StartTime"
        ]

    later, latest = planned + timedelta(hours=1), planned + timedelta(hours=2)
    assert moved_to(later) == [(planned.isoformat(), later.isoformat())]
    assert moved_to(latest) == [(planned.isoformat(), latest.isoformat())]
    assert moved_to(planned) == []  # back to the plan
    [row] = squeue_jobs(slurm_cluster, [job], "PENDING")  # still held, where its owner put it
    assert (row["id"], row["start"]) == (slurm_id, planned.strftime("%Y-%m-%dT%H:%M:%S"))
