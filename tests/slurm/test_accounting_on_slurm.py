"""A hung slurmdbd (``sacct`` waits ~45 s, then fails) while slurmctld answers (``make
slurm-up`` first): only the ends that need ``sacct`` wait, for ``accounting_timeout_s`` once;
the controller is not taken for down, so other jobs are still submitted and watched."""

from __future__ import annotations

import os
import pwd
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.assemble import Daemon
from daemon.executors.base import LaunchSpec
from daemon.executors.errors import ExecutorUnavailableError
from daemon.executors.slurm import SlurmExecutor, SubprocessRunner, Target
from tests.slurm import localcluster
from tests.slurm.carbond_jobs import (
    MovableForecast,
    append_queue,
    queue_line,
    squeue_jobs,
    tick,
    tick_until,
    unique_ids,
)
from tests.slurm.carbond_jobs import service as _service
from tests.slurm.cluster import SlurmCluster

service = _service  # the fixture: a service in-process (jobs owned by root), on the real Slurm

pytestmark = pytest.mark.slurm


@contextmanager
def _slurmdbd_hung(cluster: SlurmCluster) -> Iterator[None]:
    """slurmdbd stopped (SIGSTOP: it keeps its socket, answers nothing), resumed after."""
    dbd = localcluster.daemon(cluster.layout, "slurmdbd")
    pid = int(dbd.pid_file.read_text())
    assert dbd.cmdline_word in Path(f"/proc/{pid}/cmdline").read_text()
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_hung_slurmdbd_delays_only_the_ends_that_need_sacct(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    runner = SubprocessRunner(timeout_s=30, accounting_timeout_s=2)
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=runner, known_gpus=["T4"])
    executor.discover("qc")
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / "logs"

    def spec(job: str, *argv: str) -> LaunchSpec:
        return LaunchSpec(job, argv, owner.pw_uid, owner.pw_gid, (0,), logs, region="qc",
                          device_ids=("qc/0",))  # fmt: skip

    done = executor.launch(spec(f"done-{uuid.uuid4().hex[:8]}", "true"), datetime.now(UTC))
    slurm_id = int(done.token.split('"')[3])
    slurm_cluster.wait_until(lambda: slurm_cluster.job_state(slurm_id) == "COMPLETED",
                             what="the job to end in sacct")  # fmt: skip

    with _slurmdbd_hung(slurm_cluster), capture_logs() as events:
        now = datetime.now(UTC)
        began = time.monotonic()
        assert executor.poll([done], now) == []  # its end waits for sacct
        assert time.monotonic() - began < 10  # 2 s, not command_timeout_s (30)
        assert executor.problems().keys() == {"slurmdbd"}  # not "slurm": slurmctld answers
        began = time.monotonic()
        assert executor.poll([done], now + timedelta(seconds=5)) == []  # not asked again yet
        assert time.monotonic() - began < 1.5
        other = executor.launch(spec(f"other-{uuid.uuid4().hex[:8]}", "sleep", "30"), now)
        assert executor.poll([other], now) == []  # submitted and watched as usual
        executor.cancel(other, now)
        for s in (6, 7, 8):  # still waiting: the failure is not logged again each poll
            assert executor.poll([done], now + timedelta(seconds=s)) == []
        failed = [e for e in events if e["event"] == "slurm_sacct_failed"]
        assert len(failed) == 1 and failed[0]["slurm_ids"] == [str(slurm_id)]

    with capture_logs() as events:
        [status] = slurm_cluster.wait_until(
            lambda: executor.poll([done], datetime.now(UTC) + timedelta(seconds=30)),
            what="the end read once slurmdbd answers",
        )
    assert status.succeeded and executor.problems() == {}
    assert "slurm_sacct_back" in [e["event"] for e in events]


def test_a_planned_job_is_handed_to_slurm_while_slurmdbd_hangs(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster
) -> None:
    """A job never handed over is looked up by name in squeue only: its hand-over needs no
    sacct, so a hung slurmdbd (2 s per sacct here, then an accounting outage) does not stop it."""
    daemon, forecast = service
    [job] = unique_ids("nodbd")
    now = datetime.now(UTC)
    forecast.dip = ("CA-QC", now + timedelta(hours=1), now + timedelta(hours=2), 10.0)
    with _slurmdbd_hung(slurm_cluster):
        append_queue(daemon.settings.state_dir,
                     [queue_line(job, ["sleep", "1"], deadline="+3h", regions=["qc"])])  # fmt: skip
        [row] = tick_until(
            slurm_cluster,
            daemon,
            "the job held in squeue",
            lambda: squeue_jobs(slurm_cluster, [job]),
        )
        assert (row["state"], row["reason"], row["partition"]) == ("PENDING", "BeginTime", "alpha")
        run = daemon.ledger.run(job)
        assert daemon.ledger.job(job).state == "planned"
        assert run is not None and f'"{row["id"]}"' in (run.token or "")


def test_a_release_waiting_for_sacct_says_so_and_is_logged_once(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster
) -> None:
    """A held job an admin cancelled in Slurm while slurmdbd hangs, then planned to start
    now: whether it ever ran waits for sacct, so the job is queued again each round (its Slurm
    job kept), saying it waits for Slurm's accounting (not that Slurm cannot be reached),
    logged once."""
    daemon, forecast = service
    [job] = unique_ids("acct")
    now = datetime.now(UTC)
    forecast.dip = ("CA-QC", now + timedelta(hours=1), now + timedelta(hours=2), 10.0)
    append_queue(daemon.settings.state_dir,
                 [queue_line(job, ["sleep", "1"], deadline="+3h", regions=["qc"])])  # fmt: skip
    [row] = tick_until(
        slurm_cluster, daemon, "the job held", lambda: squeue_jobs(slurm_cluster, [job])
    )
    with _slurmdbd_hung(slurm_cluster), capture_logs() as logs:
        slurm_cluster.run(["scancel", row["id"]])
        forecast.dip = ("CA-QC", now - timedelta(hours=1), now + timedelta(hours=2), 10.0)

        def requeues() -> list[str]:
            return [t.reason for t in daemon.ledger.transitions(job)
                    if t.reason.startswith("requeued")]  # fmt: skip

        def requeued_thrice() -> bool:
            tick(daemon)
            return len(requeues()) >= 3

        slurm_cluster.wait_until(requeued_thrice, timeout_s=50, what="three release rounds")
        assert daemon.ledger.job(job).state == "queued"
    assert set(requeues()) == {
        "requeued: waiting for slurm accounting to record how its job ended (Slurm job "
        f"{row['id']} left squeue but sacct has no end of it yet (asked each round, for up "
        "to 60 s))"
    }
    assert [e["event"] for e in logs].count("job_release_failed") == 1
    run = daemon.ledger.run(job)  # its Slurm job kept: never resubmitted meanwhile
    assert run is not None and f'"{row["id"]}"' in (run.token or "")
    assert [r["id"] for r in squeue_jobs(slurm_cluster, [job])] == [row["id"]]


def test_a_held_job_without_slurm_id_released_while_slurmdbd_hangs_waits_not_fails(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A held job whose Slurm id was never recorded (a hand-over that failed, or one a killed
    daemon made), released while slurmdbd hangs, is not in squeue: sacct alone could tell
    whether an earlier submission ran. That is unknown, not a refusal: the release raises
    ExecutorUnavailableError (the service requeues it with its run row kept) rather than an
    ExecutorError (the service recorded the job failed: "launch failed: sacct: ...")."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    runner = SubprocessRunner(timeout_s=30, accounting_timeout_s=2)
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=runner, known_gpus=["T4"])
    executor.discover("qc")
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / "logs"
    job = f"unsent-{uuid.uuid4().hex[:8]}"
    spec = LaunchSpec(job, ("true",), owner.pw_uid, owner.pw_gid, (0,), logs, region="qc",
                      device_ids=("qc/0",))  # fmt: skip
    with _slurmdbd_hung(slurm_cluster):
        for wait_s in (0, 1):  # sacct timed out, then not asked again yet
            now = datetime.now(UTC) + timedelta(seconds=wait_s)
            with pytest.raises(ExecutorUnavailableError, match="cannot tell whether"):
                executor.release(spec, "", now)
    assert squeue_jobs(slurm_cluster, [job]) == []  # nothing submitted while unknown
