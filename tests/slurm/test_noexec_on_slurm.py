"""A job whose command sits on a file system its node mounts ``noexec``, on the real local
Slurm (``make slurm-up``): the host carbond runs on sees the file executable (mode 755), the
node does not run it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.assemble import Daemon
from tests.slurm import localcluster
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

service = _service  # the fixture: the service in-process (jobs owned by root), on the real Slurm

pytestmark = pytest.mark.slurm


@pytest.fixture
def noexec_on_n1(slurm_cluster: SlurmCluster, tmp_path: Path) -> Iterator[Path]:
    """A folder node n1 sees mounted ``noexec`` (in its slurmd's mount namespace, where its
    jobs run: the folder bound onto itself, remounted ``noexec``); the host sees it as it is.
    Unmounted after."""
    folder = tmp_path / "noexec"
    folder.mkdir()
    slurmd = localcluster.daemon(slurm_cluster.layout, "slurmd-n1")
    pid = slurmd.pid_file.read_text().split()[0]

    def on_n1(*argv: str, check: bool = True) -> None:
        subprocess.run(["nsenter", "-t", pid, "-m", *argv], check=check, capture_output=True)

    try:
        on_n1("mount", "--bind", str(folder), str(folder))
        on_n1("mount", "-o", "remount,bind,noexec", str(folder))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a folder noexec in n1's mount namespace: {exc}")
    yield folder
    on_n1("umount", str(folder), check=False)  # gone already where the test restarted n1


def test_a_job_whose_command_is_on_a_noexec_mount_fails_126_saying_so(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster, noexec_on_n1: Path
) -> None:
    """dash's ``[ -x ]`` is false for a file on a ``noexec`` mount (its access check fails,
    whatever the mode), so the batch script's check said ``not executable (no execute
    permission)`` of a file of mode 755, sending its owner to chmod. It now names the mount;
    the exit code is the shell's 126, as before."""
    daemon, _ = service
    [job] = unique_ids("noexec")
    tool = noexec_on_n1 / "tool"
    tool.write_text("#!/bin/sh\necho ran\n")
    tool.chmod(0o755)
    on_host = subprocess.run([str(tool)], check=True, capture_output=True, text=True)
    assert on_host.stdout == "ran\n"  # the host runs it: only n1 mounts it noexec
    line = queue_line(job, [str(tool), "serve"], deadline="+1h", regions=["qc"])
    append_queue(daemon.settings.state_dir, [line])
    tick_until(slurm_cluster, daemon, "the job final",
               lambda: daemon.ledger.job(job).state in FINAL)  # fmt: skip

    why = f"cannot start: {tool}: not executable (its file system is mounted noexec)"
    assert daemon.ledger.job(job).state == "failed"
    assert daemon.ledger.transitions(job)[-1].reason == f"exit code 126: {why}"
    run = daemon.ledger.run(job)
    assert run is not None and run.exit_code == 126
    err = daemon.settings.state_dir / "logs" / f"{job}.err"
    assert err.read_text() == f"carbond: {why}\n"
