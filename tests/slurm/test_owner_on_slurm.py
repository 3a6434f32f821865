"""A job found by its Slurm name ``carbond-<id>`` (a hand-over or launch whose Slurm id carbond
never recorded) must be its owner's: anyone can name a job that way (``make slurm-up`` first)."""

from __future__ import annotations

import pwd
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.executors.base import Held, LaunchSpec, NotStarted, RunHandle
from daemon.executors.errors import LaunchRefusedError
from daemon.executors.slurm import SlurmExecutor, SubprocessRunner, Target
from tests.daemon.users import uid_without_user
from tests.slurm.cluster import SlurmCluster

pytestmark = pytest.mark.slurm


@pytest.fixture
def executor(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmExecutor:
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(), known_gpus=["T4"])
    executor.discover("qc")
    return executor


def _impostor(slurm_cluster: SlurmCluster, job: str, *begin: str) -> int:
    """Another user's job named as carbond names ``job``'s."""
    return slurm_cluster.sbatch("-p", "alpha", f"--job-name=carbond-{job}", *begin,
                                wrap="sleep 30", user=slurm_cluster.other_user)  # fmt: skip


def _squeue(slurm_cluster: SlurmCluster, slurm_id: int) -> str:
    """``state|reason`` of a job squeue shows."""
    return slurm_cluster.run(["squeue", "-h", "-j", str(slurm_id), "-o", "%T|%r"]).stdout.strip()


def test_another_users_job_with_the_name_is_not_adopted(
    slurm_cluster: SlurmCluster, executor: SlurmExecutor
) -> None:
    owner = pwd.getpwnam(slurm_cluster.user).pw_uid
    job = f"own-{uuid.uuid4().hex[:8]}"
    other = _impostor(slurm_cluster, job)
    slurm_cluster.wait_until(lambda: slurm_cluster.job_state(other) == "RUNNING",
                             what="the other user's job to run")  # fmt: skip
    now = datetime.now(UTC)

    [item] = executor.adopt([RunHandle(job, "slurm", "", now, uid=owner)], now)

    assert isinstance(item, NotStarted)  # not the other user's job, its exit or its energy
    assert slurm_cluster.job_state(other) == "RUNNING"


def test_withdraw_by_name_leaves_another_users_job_alone(
    slurm_cluster: SlurmCluster, executor: SlurmExecutor
) -> None:
    owner = pwd.getpwnam(slurm_cluster.user).pw_uid
    job = f"own-{uuid.uuid4().hex[:8]}"
    other = _impostor(slurm_cluster, job, "--begin=now+1hour")
    now = datetime.now(UTC)

    assert executor.withdraw(job, "", now, uid=owner) is None  # nothing of the owner's held

    assert _squeue(slurm_cluster, other) == "PENDING|BeginTime"  # neither held nor cancelled


def test_by_name_the_owners_job_is_found_not_a_newer_one_of_another_user(
    slurm_cluster: SlurmCluster, executor: SlurmExecutor
) -> None:
    owner = pwd.getpwnam(slurm_cluster.user).pw_uid
    job = f"own-{uuid.uuid4().hex[:8]}"
    mine = slurm_cluster.sbatch("-p", "alpha", f"--job-name=carbond-{job}", "--begin=now+1hour",
                                wrap="sleep 30", user=slurm_cluster.user)  # fmt: skip
    other = _impostor(slurm_cluster, job, "--begin=now+1hour")  # newer: the one taken before
    now = datetime.now(UTC)

    [adopted] = executor.adopt([RunHandle(job, "slurm", "", now, uid=owner)], now)
    assert isinstance(adopted, RunHandle) and f'"slurm_id": "{mine}"' in adopted.token
    assert executor.withdraw(job, "", now, uid=owner) is None

    slurm_cluster.wait_until(lambda: slurm_cluster.job_state(mine).startswith("CANCELLED"),
                             what="the owner's job to be cancelled")  # fmt: skip
    assert _squeue(slurm_cluster, other) == "PENDING|BeginTime"


def test_an_owner_without_a_passwd_entry_is_refused_not_requeued_by_slurm_for_ever(
    slurm_cluster: SlurmCluster, executor: SlurmExecutor, tmp_path: Path
) -> None:
    # Slurm takes such a user's sbatch, then slurmctld cannot make its credential
    # (getpwuid failed) and requeues it with a BeginTime 2 minutes on, again and again.
    uid = uid_without_user()
    job = f"nopw-{uuid.uuid4().hex[:8]}"
    spec = LaunchSpec(job, ("true",), uid, uid, (0,), tmp_path, region="qc", device_ids=("qc/0",))

    with pytest.raises(LaunchRefusedError, match=rf"uid {uid}, has no user on this host"):
        executor.launch(spec, datetime.now(UTC))

    names = slurm_cluster.run(["squeue", "-h", "-a", "-o", "%j"]).stdout.split()
    assert f"carbond-{job}" not in names  # nothing submitted


def test_a_root_job_held_before_root_jobs_were_turned_off_is_cancelled_not_left_to_start(
    slurm_cluster: SlurmCluster, executor: SlurmExecutor, tmp_path: Path
) -> None:
    # held by a daemon that allowed root's jobs; one restarted with allow_root_jobs = false
    # cancels it in Slurm the first time it sees it (watched, or moved by a new plan), before
    # Slurm can start it as root at its --begin
    refusing = SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(),
                             known_gpus=["T4"], allow_root_jobs=False)  # fmt: skip
    refusing.discover("qc")
    now = datetime.now(UTC)
    specs = [LaunchSpec(f"root-{uuid.uuid4().hex[:8]}", ("id",), 0, 0, (0,), tmp_path,
                        region="qc", device_ids=("qc/0",)) for _ in range(2)]  # fmt: skip
    watched, moved = (executor.hold(s, now + timedelta(hours=1), "", now) for s in specs)
    ids = [int(h.token.split('"')[3]) for h in (watched, moved)]
    assert [_squeue(slurm_cluster, i) for i in ids] == ["PENDING|BeginTime"] * 2

    ended = refusing.ended_held([RunHandle(specs[0].job_id, "slurm", watched.token, now,
                                           uid=0)], now)  # fmt: skip
    again = refusing.hold(specs[1], now + timedelta(hours=2), moved.token, now)

    assert ended[specs[0].job_id].refused and again.ended is not None and again.ended.refused
    assert ended[specs[0].job_id].reason == (
        f"job {specs[0].job_id}: refusing to run a job as root; its held Slurm job {ids[0]} "
        "is cancelled"
    )
    for slurm_id in ids:
        slurm_cluster.wait_until(
            lambda i=slurm_id: slurm_cluster.job_state(i).startswith("CANCELLED"),
            what="the held root job to be cancelled",
        )
        [row] = slurm_cluster.sacct(slurm_id, ("JobID", "NodeList"))
        assert row["NodeList"] == "None assigned"  # never ran


@pytest.mark.parametrize("step", ["hold", "watch"])
def test_a_root_job_slurm_started_at_its_planned_start_before_a_restart_is_cancelled(
    slurm_cluster: SlurmCluster, executor: SlurmExecutor, tmp_path: Path, step: str
) -> None:
    # held by a daemon that allowed root's jobs; Slurm starts it at its --begin while no
    # daemon looks; the one restarted with allow_root_jobs = false hands it over again (its
    # first round's hold) or watches it between plans: it cancels it running, answers it
    # started at Slurm's start, and its end, read from sacct, fails with the refusal's words
    # (the hold reported it started and left it running as root; the watching left it
    # running until the next hold, release or withdrawal)
    refusing = SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(),
                             known_gpus=["T4"], allow_root_jobs=False)  # fmt: skip
    refusing.discover("qc")
    now = datetime.now(UTC)
    spec = LaunchSpec(f"root-{uuid.uuid4().hex[:8]}", ("sleep", "60"), 0, 0, (0,), tmp_path,
                      region="qc", device_ids=("qc/0",))  # fmt: skip
    held = executor.hold(spec, now + timedelta(seconds=2), "", now)
    slurm_id = int(held.token.split('"')[3])
    slurm_cluster.wait_until(lambda: _squeue(slurm_cluster, slurm_id) == "RUNNING|None",
                             what="Slurm to start it at its planned start")  # fmt: skip

    later = datetime.now(UTC)
    if step == "hold":
        again = refusing.hold(spec, later + timedelta(hours=1), held.token, later)
    else:
        watched = RunHandle(spec.job_id, "slurm", held.token, now, uid=0)
        [again] = refusing.ended_held([watched], later).values()
        assert isinstance(again, Held)

    assert again.token == held.token and again.ended is None and again.started_at is not None
    slurm_cluster.wait_until(lambda: slurm_cluster.job_state(slurm_id).startswith("CANCELLED"),
                             what="the started root job to be cancelled")  # fmt: skip
    handle = RunHandle(spec.job_id, "slurm", held.token, again.started_at, uid=0)
    [end] = slurm_cluster.wait_until(lambda: refusing.poll([handle], datetime.now(UTC)),
                                     what="its end read from sacct")  # fmt: skip
    assert end.reason == (
        f"launch failed: job {spec.job_id}: refusing to run a job as root; Slurm started its "
        f"job {slurm_id} at its planned start before carbond saw it: cancelled after it started"
    )
    assert end.started_at == again.started_at and not end.cancelled_by_owner
