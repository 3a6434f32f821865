"""A root job (``allow_root_jobs``) may make cgroups under its own and move processes there:
its cancel, its kill and its end reach them too, with ``cgroup.kill`` or without (a kernel
before 5.14), and its cgroup is removed with them. Real cgroups (skipped where there are
none)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.executors import wrapper
from daemon.executors.base import RunHandle
from daemon.executors.jobfiles import process_start_ticks
from daemon.executors.local import LocalExecutor
from daemon.executors.local_cgroup_jobs import JobCgroups
from tests.daemon.executors.cgroup_subtree import cgroup_subtree
from tests.daemon.executors.local_jobs import (
    NOW,
    FakeMonotonic,
    gone,
    job_spec,
    read_pid,
    wait_ended,
)

# The job (argv: its cgroup, a pid file, "ignore"|"default" for the child's SIGTERM, how long
# the job sleeps) makes <its cgroup>/inner and forks a child that leaves its session, moves
# itself there and sleeps; the job itself ignores SIGTERM.
NESTED_SLEEPER = (
    "import os, pathlib, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "inner = pathlib.Path(sys.argv[1]) / 'inner'\n"
    "inner.mkdir()\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if sys.argv[3] == 'default':\n"
    "        signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
    "    (inner / 'cgroup.procs').write_text(str(os.getpid()))\n"
    "    tmp = pathlib.Path(sys.argv[2] + '.tmp'); tmp.write_text(str(os.getpid()))\n"
    "    tmp.rename(sys.argv[2])\n"
    "    time.sleep(300)\n"
    "    os._exit(0)\n"
    "while not os.path.exists(sys.argv[2]):\n"
    "    time.sleep(0.01)\n"
    "time.sleep(float(sys.argv[4]))\n"
)


@pytest.fixture
def subtree() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root: a root job makes cgroups under its own")
    with cgroup_subtree() as (path, _):
        yield path


def _launch(
    executor: LocalExecutor, tmp_path: Path, job_id: str, child_term: str, sleep_s: str
) -> tuple[RunHandle, int, int | None]:
    assert executor.cgroups is not None
    cgroup = executor.cgroups.path_of(job_id)
    pid_file = tmp_path / f"{job_id}.pid"
    argv = (sys.executable, "-c", NESTED_SLEEPER, str(cgroup), str(pid_file), child_term, sleep_s)
    handle = executor.launch(job_spec(tmp_path, job_id, *argv, uid=0, gid=0), NOW)
    child = read_pid(pid_file)
    assert (cgroup / "inner" / "cgroup.procs").read_text().split() == [str(child)]
    return handle, child, process_start_ticks(child)


@pytest.mark.parametrize("kill_file", [True, False], ids=["cgroup.kill", "sigkill-loop"])
def test_a_cancel_reaches_a_process_in_a_cgroup_the_job_made(
    tmp_path: Path, subtree: Path, kill_file: bool
) -> None:
    """The cancel's SIGTERM went to the job cgroup's own cgroup.procs only: a process the job
    moved to a cgroup under it (and out of its session) never got it."""
    clock = FakeMonotonic()
    cgroups = JobCgroups(subtree, kill_file=kill_file)
    executor = LocalExecutor(grace_s=60.0, monotonic=clock, cgroups=cgroups)
    handle, child, ticks = _launch(executor, tmp_path, "job-t", "default", "300")

    executor.cancel(handle, NOW)
    try:
        assert gone(child, ticks), "the child in the job's inner cgroup missed the SIGTERM"
        assert executor.poll([handle], NOW) == []
    finally:
        clock.t += 61.0
        wait_ended(executor, handle)


@pytest.mark.parametrize("kill_file", [True, False], ids=["cgroup.kill", "sigkill-loop"])
def test_a_kill_and_the_end_reach_a_cgroup_the_job_made(
    tmp_path: Path, subtree: Path, kill_file: bool
) -> None:
    """After the grace, the SIGKILL (the loop over cgroup.procs where there is no cgroup.kill)
    missed the inner cgroup's SIGTERM-ignoring process, and the job's cgroup, a child cgroup
    in it, was never removed (retried at every poll, and the job's next attempt refused)."""
    clock = FakeMonotonic()
    cgroups = JobCgroups(subtree, kill_file=kill_file)
    executor = LocalExecutor(grace_s=1.0, monotonic=clock, cgroups=cgroups)
    handle, child, ticks = _launch(executor, tmp_path, "job-k", "ignore", "300")

    executor.cancel(handle, NOW)
    clock.t += 2.0
    status = wait_ended(executor, handle)

    assert status.signal == signal.SIGKILL
    assert gone(child, ticks), "the child in the job's inner cgroup outlived the kill"
    assert not cgroups.path_of("job-k").exists(), "the job's cgroup was left behind"


def test_a_jobs_end_removes_the_cgroups_it_made(tmp_path: Path, subtree: Path) -> None:
    """A job that ends on its own, its child left in a cgroup it made: the child is killed
    and both cgroups are removed."""
    cgroups = JobCgroups(subtree, kill_file=False)
    executor = LocalExecutor(cgroups=cgroups)
    handle, child, ticks = _launch(executor, tmp_path, "job-e", "ignore", "0")

    status = wait_ended(executor, handle)
    deadline = time.monotonic() + 5.0
    while cgroups.path_of("job-e").exists() and time.monotonic() < deadline:
        executor.poll([], NOW)  # the retry at each poll
        time.sleep(0.05)

    assert status.exit_code == 0
    assert gone(child, ticks), "the child in the job's inner cgroup outlived its job"
    assert list(subtree.iterdir()) == [p for p in subtree.iterdir() if not p.is_dir()]


def test_the_wrappers_straggler_cleanup_reaches_a_cgroup_the_job_made(
    subtree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the job's end the wrapper SIGTERMs what it left (and counts it in the status's
    reason) before the daemon's SIGKILL: a process in a cgroup under the job's was neither
    signalled nor counted. Here the wrapper's function, in this process (whose session is
    not a job's: only the cgroup counts), on a real job cgroup with a child cgroup."""
    monkeypatch.setattr(wrapper, "_session_members", list)
    inner = JobCgroups(subtree).create("job-w") / "inner"
    inner.mkdir()
    left = subprocess.Popen(["sleep", "300"])
    try:
        (inner / "cgroup.procs").write_text(str(left.pid))

        assert wrapper._end_stragglers(str(subtree / "job-job-w")) == 1

        assert left.wait(timeout=10) == -signal.SIGTERM  # the SIGTERM first, as for any
    finally:
        left.kill()
        left.wait()
