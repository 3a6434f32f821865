"""A restarted daemon removes the jobs' cgroups no run it follows owns: the list of those its
predecessor still had to remove (a process slow to die) was in that daemon's memory, so they
leaked. Real cgroups and a real ledger (skipped where there is no writable cgroup2)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.endings.rules import run_handle
from daemon.executors.jobfiles import process_start_ticks
from daemon.executors.local import LocalExecutor
from daemon.executors.local_cgroup_jobs import JobCgroups
from daemon.settings import RegionSettings
from tests.daemon.executors.cgroup_subtree import cgroup_subtree
from tests.daemon.executors.local_jobs import gone
from tests.daemon.helpers import append, job_line, make_service

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HERE = (RegionSettings(name="here", zone="CA-QC", executor="local", gpus=("T4",)),)


@pytest.fixture
def subtree() -> Iterator[Path]:
    with cgroup_subtree() as (path, _):
        yield path


def _leftover(cgroups: JobCgroups, job_id: str) -> subprocess.Popen[bytes]:
    """Job ``job_id``'s cgroup as an earlier daemon left it: a process still in it."""
    path = cgroups.create(job_id)
    proc = subprocess.Popen(["sleep", "300"])
    (path / "cgroup.procs").write_text(str(proc.pid))
    return proc


def _executor(tmp_path: Path, subtree: Path) -> LocalExecutor:
    return LocalExecutor(log_dir=tmp_path / "logs", cgroups=JobCgroups(subtree, kill_file=False))


def test_a_restarted_daemon_removes_the_cgroups_of_runs_it_does_not_follow(
    tmp_path: Path, subtree: Path
) -> None:
    """Job "run" runs; "gone" ended under the daemon before (its cgroup kept by a process
    slow to die). The next daemon's start kills and removes "gone"'s cgroup and says so once;
    "run"'s cgroup and processes are left to it."""
    launcher = _executor(tmp_path, subtree)
    first = make_service(tmp_path, launcher, regions=HERE)  # type: ignore[arg-type]
    first.start(NOW)
    append(first.queue.path, job_line(id="run", command=["sleep", "300"]))
    first.tick(NOW)
    assert first.ledger.job("run").state == "running"
    (handle,) = (run_handle(r) for r in first.ledger.active_runs())
    first.ledger.close()
    cgroups = JobCgroups(subtree)
    deadline = time.monotonic() + 10.0
    while len(running := cgroups.members("run")) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(running) == 2  # its wrapper and its job
    leftover = _leftover(cgroups, "gone")
    ticks = process_start_ticks(leftover.pid)

    executor = _executor(tmp_path, subtree)
    with capture_logs() as events:
        second = make_service(tmp_path, executor, regions=HERE)  # type: ignore[arg-type]
        second.start(NOW)

    assert gone(leftover.pid, ticks), "the leftover cgroup's process was not killed"
    leftover.wait()
    assert not cgroups.path_of("gone").exists(), "the leftover cgroup was not removed"
    assert cgroups.members("run") == running and second.ledger.job("run").state == "running"
    swept = [e for e in events if e["event"] == "local_cgroups_swept"]
    assert [(e["count"], e["jobs"], e["not_removed_yet"]) for e in swept] == [(1, ["gone"], [])]
    second.ledger.close()
    cgroups.remove("run")
    while not launcher.poll([handle], NOW):  # its wrapper reaped
        time.sleep(0.02)


def test_nothing_is_said_when_there_is_nothing_to_remove(tmp_path: Path, subtree: Path) -> None:
    executor = _executor(tmp_path, subtree)
    (subtree / "daemon").mkdir()  # the daemon's own leaf is not a job's
    with capture_logs() as events:
        service = make_service(tmp_path, executor, regions=HERE)  # type: ignore[arg-type]
        service.start(NOW)
    assert [e for e in events if e["event"] == "local_cgroups_swept"] == []
    assert (subtree / "daemon").is_dir()
    service.ledger.close()


def test_a_cgroup_not_removable_at_start_is_retried_at_each_poll(
    tmp_path: Path, subtree: Path
) -> None:
    """One the sweep cannot remove yet (here a mount point in it stands for a process slow
    to die) goes to the retries each poll makes."""
    cgroups = JobCgroups(subtree)
    blocker = cgroups.create("slow") / "child"
    blocker.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "none", str(blocker)], check=False).returncode:
        pytest.skip(f"cannot mount a tmpfs on {blocker} (needs root)")
    executor = _executor(tmp_path, subtree)
    try:
        with capture_logs() as events:
            executor.sweep(frozenset())
        assert cgroups.path_of("slow").exists()
    finally:
        subprocess.run(["umount", str(blocker)], check=True)
    (event,) = (e for e in events if e["event"] == "local_cgroups_swept")
    assert event["not_removed_yet"] == ["slow"]

    executor.poll([], NOW)

    assert not cgroups.path_of("slow").exists()
