"""A carbond job's ``.out``/``.err`` on the real local Slurm (``make slurm-up``) are its user's
alone, as a local job's are, even when Slurm itself has to create them; a command not found,
or found but not executable, is read back from its ``.err``."""

from __future__ import annotations

import os
import pwd
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.assemble import Daemon
from daemon.executors.base import LaunchSpec, RunHandle
from daemon.executors.slurm import SlurmExecutor, SubprocessRunner, Target
from tests.slurm.carbond_jobs import (
    FINAL,
    MovableForecast,
    append_queue,
    queue_line,
    tick_until,
    unique_ids,
)
from tests.slurm.carbond_jobs import service as _service
from tests.slurm.cluster import SlurmCluster

service = _service  # the fixture: the service in-process, against the same real Slurm

pytestmark = pytest.mark.slurm


@pytest.fixture
def executor(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmExecutor:
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(), known_gpus=["T4"])
    executor.discover("qc")
    return executor


def test_output_files_slurm_creates_are_private_and_the_job_keeps_umask_022(
    slurm_cluster: SlurmCluster, executor: SlurmExecutor
) -> None:
    """The daemon (umask 022) ran ``sbatch`` with its umask, and Slurm creates a job's output
    files with the submitter's umask: carbond creates them 0600 first, but where the job's
    user may write the log dir (their own, under a carbond not running as root) one gone by
    the time the job starts (a held job's, removed while it waited) came back 0644, the job's
    output readable by every user. ``sbatch`` now runs with umask 077; the job itself still starts
    with umask 022, as a local job does."""
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / f"logs-{uuid.uuid4().hex[:8]}"
    job = f"logs-{uuid.uuid4().hex[:8]}"
    spec = LaunchSpec(job, ("sh", "-c", "umask; echo oops >&2"), owner.pw_uid, owner.pw_gid,
                      (0,), logs, region="qc", device_ids=("qc/0",))  # fmt: skip
    now = datetime.now(UTC)
    held = executor.hold(spec, now + timedelta(hours=1), "", now, new=True)
    out, err = logs / f"{job}.out", logs / f"{job}.err"
    os.chown(logs, owner.pw_uid, owner.pw_gid)  # the user's own log dir (a non-root carbond's)
    out.unlink()  # gone while the job waited: Slurm creates them as the job starts
    err.unlink()

    handle = executor.release(spec, held.token, datetime.now(UTC))
    [status] = slurm_cluster.wait_until(
        lambda: executor.poll([handle], datetime.now(UTC)), what="the job to end"
    )

    assert status.succeeded
    assert [oct(stat.S_IMODE(p.stat().st_mode)) for p in (out, err)] == ["0o600", "0o600"]
    assert [p.stat().st_uid for p in (out, err)] == [owner.pw_uid, owner.pw_uid]
    assert out.read_text().strip() == "0022"
    assert err.read_text().strip() == "oops"


def test_a_held_job_whose_output_files_were_removed_gets_them_back_at_release(
    slurm_cluster: SlurmCluster, executor: SlurmExecutor
) -> None:
    """A held job's ``.out``/``.err`` removed while it waited (its owner, a tmp cleaner) in
    carbond's own log dir (root's, 0755: the job's user may not create files there) made
    Slurm fail the job as it started (slurmstepd could not open them as the user): it ended
    ``slurm FAILED`` without running. Release now creates them again first, as submission
    does: the job's user's, 0600."""
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / f"logs-{uuid.uuid4().hex[:8]}"
    job = f"gone-{uuid.uuid4().hex[:8]}"
    spec = LaunchSpec(job, ("sh", "-c", "echo out; echo err >&2"), owner.pw_uid, owner.pw_gid,
                      (0,), logs, region="qc", device_ids=("qc/0",))  # fmt: skip
    now = datetime.now(UTC)
    held = executor.hold(spec, now + timedelta(hours=1), "", now, new=True)
    out, err = logs / f"{job}.out", logs / f"{job}.err"
    assert logs.stat().st_uid == 0  # carbond's, as under a root daemon's state_dir
    out.unlink()
    err.unlink()

    handle = executor.release(spec, held.token, datetime.now(UTC))
    [status] = slurm_cluster.wait_until(
        lambda: executor.poll([handle], datetime.now(UTC)), what="the job to end"
    )

    assert (status.succeeded, status.reason) == (True, "slurm COMPLETED")
    assert [oct(stat.S_IMODE(p.stat().st_mode)) for p in (out, err)] == ["0o600", "0o600"]
    assert [p.stat().st_uid for p in (out, err)] == [owner.pw_uid, owner.pw_uid]
    assert (out.read_text(), err.read_text()) == ("out\n", "err\n")


def test_a_held_job_slurm_starts_on_its_own_gets_its_removed_output_files_back(
    slurm_cluster: SlurmCluster, executor: SlurmExecutor
) -> None:
    """Slurm starts a held job on its own at its ``--begin`` (the planned start), maybe before
    carbond's release round: with its ``.out``/``.err`` removed while it waited, it ended
    ``slurm FAILED`` without running. The watch of held jobs (every reconcile) makes them
    again first, so the job Slurm starts by itself runs and writes them."""
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / f"logs-{uuid.uuid4().hex[:8]}"
    job = f"begins-{uuid.uuid4().hex[:8]}"
    spec = LaunchSpec(job, ("sh", "-c", "echo out; echo err >&2"), owner.pw_uid, owner.pw_gid,
                      (0,), logs, region="qc", device_ids=("qc/0",))  # fmt: skip
    now = datetime.now(UTC)
    held = executor.hold(spec, now + timedelta(seconds=4), "", now, new=True)
    out, err = logs / f"{job}.out", logs / f"{job}.err"
    out.unlink()
    err.unlink()
    handle = RunHandle(job, "slurm", held.token, now, uid=owner.pw_uid)

    assert executor.ended_held([handle], datetime.now(UTC)) == {}  # still held: files back
    [status] = slurm_cluster.wait_until(  # never released: Slurm starts it at its begin time
        lambda: executor.poll([handle], datetime.now(UTC)), what="the job to end"
    )

    assert (status.succeeded, status.reason) == (True, "slurm COMPLETED")
    assert [oct(stat.S_IMODE(p.stat().st_mode)) for p in (out, err)] == ["0o600", "0o600"]
    assert [p.stat().st_uid for p in (out, err)] == [owner.pw_uid, owner.pw_uid]
    assert (out.read_text(), err.read_text()) == ("out\n", "err\n")


def test_a_job_whose_command_is_not_found_says_so_as_a_local_job_does(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster
) -> None:
    """A Slurm job whose command its ``PATH`` does not have failed ``exit code 127: slurm
    FAILED`` (Slurm records only the exit code), where the local executor says ``exit code
    127: command not found: vllm``. Its batch script now checks the command before ``exec``
    and says so on its ``.err``, which carbond reads back: the same words. A job whose own
    command exits 127 is not said to be not found."""
    daemon, _ = service
    missing, own = unique_ids("missing", "own127")
    command = f"vllm-{missing}"  # on no PATH
    append_queue(
        daemon.settings.state_dir,
        [
            queue_line(missing, [command, "serve"], deadline="+1h", regions=["qc"]),
            queue_line(own, ["sh", "-c", "exit 127"], deadline="+1h", regions=["qc"]),
        ],
    )
    tick_until(
        slurm_cluster,
        daemon,
        "both jobs final",
        lambda: all(daemon.ledger.job(j).state in FINAL for j in (missing, own)),
    )

    assert [daemon.ledger.job(j).state for j in (missing, own)] == ["failed", "failed"]
    reasons = [daemon.ledger.transitions(j)[-1].reason for j in (missing, own)]
    assert reasons == [f"exit code 127: command not found: {command}",
                       "exit code 127: slurm FAILED"]  # fmt: skip
    err = daemon.settings.state_dir / "logs" / f"{missing}.err"
    assert err.read_text() == f"carbond: command not found: {command}\n"


def test_a_job_whose_command_cannot_be_executed_says_why_as_a_local_job_does(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """A Slurm job whose command exists but cannot be executed (a file without execute
    permission, a directory) failed ``exit code 126: slurm FAILED``, where the local executor
    says ``cannot start: ...``. Its batch script now names the file and why on its ``.err``
    and exits 126; carbond reads it back. A job whose own command exits 126 is not said to be
    unrunnable."""
    daemon, _ = service
    plain, folder, own = unique_ids("plain", "folder", "own126")
    tool = tmp_path / f"tool-{plain}"
    tool.write_text("#!/bin/sh\necho ran\n")
    tool.chmod(0o644)  # readable, not executable (root included)
    append_queue(
        daemon.settings.state_dir,
        [
            queue_line(plain, [str(tool), "serve"], deadline="+1h", regions=["qc"]),
            queue_line(folder, [str(tmp_path)], deadline="+1h", regions=["qc"]),
            queue_line(own, ["sh", "-c", "exit 126"], deadline="+1h", regions=["qc"]),
        ],
    )
    jobs = (plain, folder, own)
    tick_until(slurm_cluster, daemon, "the three jobs final",
               lambda: all(daemon.ledger.job(j).state in FINAL for j in jobs))  # fmt: skip

    assert [daemon.ledger.job(j).state for j in jobs] == ["failed"] * 3
    reasons = [daemon.ledger.transitions(j)[-1].reason for j in jobs]
    assert reasons == [
        f"exit code 126: cannot start: {tool}: not executable (no execute permission)",
        f"exit code 126: cannot start: {tmp_path}: a directory",
        "exit code 126: slurm FAILED",
    ]
    err = daemon.settings.state_dir / "logs" / f"{plain}.err"
    assert err.read_text() == (
        f"carbond: cannot start: {tool}: not executable (no execute permission)\n"
    )


def test_a_job_whose_command_has_no_interpreter_says_cannot_start_not_slurm_failed(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """A Slurm job whose command is an executable script with a ``#!`` interpreter that does
    not exist passes the batch script's check; its ``exec`` fails, and dash exits 127 with
    ``.../slurm_script: N: exec: FILE: not found`` on the ``.err``. carbond said ``exit code
    127: slurm FAILED``; it now reads the shell's words back."""
    daemon, _ = service
    [job] = unique_ids("nointerp")
    tool = tmp_path / f"tool-{job}"
    tool.write_text("#!/nonexistent/python3\nprint(1)\n")
    tool.chmod(0o755)
    append_queue(
        daemon.settings.state_dir,
        [queue_line(job, [str(tool), "serve"], deadline="+1h", regions=["qc"])],
    )
    tick_until(slurm_cluster, daemon, "the job final",
               lambda: daemon.ledger.job(job).state in FINAL)  # fmt: skip

    assert daemon.ledger.job(job).state == "failed"
    assert daemon.ledger.transitions(job)[-1].reason == (
        f"exit code 127: cannot start: {tool}: not found (its #! interpreter or loader is missing)"
    )
