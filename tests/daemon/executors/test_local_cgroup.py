"""Local jobs in cgroups of their own, on a real cgroup v2 subtree the tests make (skipped
where there is none): nothing a job starts outlives its cancel or its end, not even a process
that left its session, and the job's user cannot move out of its cgroup."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.executors.base import NotStarted, RunHandle
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
from tests.daemon.users import local_user

PY = sys.executable

# A job whose child leaves the job's session (setsid) and ignores SIGTERM, the child's pid
# written to argv[1]; the job itself ignores SIGTERM and sleeps.
SETSID_SLEEPER = (
    "import os, pathlib, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    tmp = pathlib.Path(sys.argv[1] + '.tmp'); tmp.write_text(str(os.getpid()))\n"
    "    tmp.rename(sys.argv[1])\n"
    "    time.sleep(300)\n"
    "    os._exit(0)\n"
    "while not os.path.exists(sys.argv[1]):\n"
    "    time.sleep(0.01)\n"
    "time.sleep(float(sys.argv[2]))\n"
)


@pytest.fixture
def subtree() -> Iterator[Path]:
    with cgroup_subtree() as (path, _):
        yield path


@pytest.mark.parametrize("kill_file", [True, False], ids=["cgroup.kill", "sigkill-loop"])
def test_a_job_that_setsids_a_sleeper_is_fully_gone_after_cancel(
    tmp_path: Path, subtree: Path, kill_file: bool
) -> None:
    """The sleeper left the job's session: the session kill missed it and it ran on (and
    held its GPU) after the job was recorded cancelled. Its cgroup holds it."""
    clock = FakeMonotonic()
    cgroups = JobCgroups(subtree, kill_file=kill_file)
    executor = LocalExecutor(grace_s=10.0, monotonic=clock, cgroups=cgroups)
    pid_file = tmp_path / "child.pid"
    handle = executor.launch(
        job_spec(tmp_path, "job-s", PY, "-c", SETSID_SLEEPER, str(pid_file), "300"), NOW
    )
    child = read_pid(pid_file)
    ticks = process_start_ticks(child)
    assert ticks is not None and os.getsid(child) == child  # a session of its own

    executor.cancel(handle, NOW)
    clock.t += 11.0
    status = wait_ended(executor, handle)

    assert status.signal == signal.SIGKILL
    assert gone(child, ticks), "the setsid child outlived the cancel"
    assert not cgroups.path_of("job-s").exists(), "the job's cgroup was left behind"


def test_a_jobs_processes_are_in_its_cgroup_from_the_start(tmp_path: Path, subtree: Path) -> None:
    """The job's first read of /proc/self/cgroup already names its cgroup: the wrapper
    entered it before starting the job."""
    cgroups = JobCgroups(subtree)
    executor = LocalExecutor(cgroups=cgroups)
    handle = executor.launch(job_spec(tmp_path, "job-c", "/bin/cat", "/proc/self/cgroup"), NOW)
    status = wait_ended(executor, handle)

    assert status.succeeded
    line = next(
        x for x in (tmp_path / "logs" / "job-c.out").read_text().splitlines() if x[:3] == "0::"
    )
    assert line.endswith(f"/{subtree.name}/job-job-c"), line


def test_a_running_jobs_pids_are_all_in_its_cgroup(tmp_path: Path, subtree: Path) -> None:
    clock = FakeMonotonic()
    cgroups = JobCgroups(subtree)
    executor = LocalExecutor(grace_s=1.0, monotonic=clock, cgroups=cgroups)
    pid_file = tmp_path / "child.pid"
    handle = executor.launch(
        job_spec(tmp_path, "job-p", PY, "-c", SETSID_SLEEPER, str(pid_file), "300"), NOW
    )
    child = read_pid(pid_file)
    token_pid = int(handle.token.split('"pid": ')[1].split(",")[0])
    members = set(cgroups.members("job-p"))
    executor.cancel(handle, NOW)
    clock.t += 2.0
    wait_ended(executor, handle)

    assert {token_pid, child} <= members and len(members) == 3  # wrapper, job, child


def test_a_jobs_cgroup_is_removed_at_its_end_with_what_it_left(
    tmp_path: Path, subtree: Path
) -> None:
    """A job that ends on its own, its setsid child left running: the wrapper ends the
    child too (it sees it in the cgroup) and the daemon removes the cgroup."""
    cgroups = JobCgroups(subtree)
    executor = LocalExecutor(cgroups=cgroups)
    pid_file = tmp_path / "child.pid"
    handle = executor.launch(
        job_spec(tmp_path, "job-e", PY, "-c", SETSID_SLEEPER, str(pid_file), "0"), NOW
    )
    child = read_pid(pid_file)
    ticks = process_start_ticks(child)
    status = wait_ended(executor, handle)

    assert status.exit_code == 0
    assert "1 process(es) it left running were terminated" in status.reason
    assert gone(child, ticks), "the setsid child outlived its job"
    assert not cgroups.path_of("job-e").exists()
    assert list(subtree.glob("job-*")) == []


def test_a_job_as_another_user_cannot_write_its_cgroups_control_files(
    tmp_path: Path, subtree: Path
) -> None:
    """The job's user may not move itself out of its cgroup (write a cgroup.procs: its own
    or its parent's), kill or freeze it, nor make a cgroup in it: all root's, 0644 or
    tighter."""
    user = local_user("carbond-cgtest")
    cgroups = JobCgroups(subtree)
    executor = LocalExecutor(allow_root_jobs=False, cgroups=cgroups)
    cgroup = cgroups.path_of("job-u")
    targets = ["cgroup.procs", "../cgroup.procs", "cgroup.kill", "cgroup.freeze",
               "cgroup.subtree_control", "../cgroup.subtree_control"]  # fmt: skip
    script = (
        f"cd {cgroup} || exit 9; for f in {' '.join(targets)}; do "
        '(echo $$ > "$f") 2>/dev/null && echo "wrote $f"; done; '
        "mkdir escape 2>/dev/null && echo made escape; "
        'sleep 5 & echo "$!" > child.pid 2>/dev/null; '
        "grep '^0::' /proc/self/cgroup"
    )
    spec = job_spec(tmp_path, "job-u", "/bin/sh", "-c", script, uid=user.pw_uid, gid=user.pw_gid)
    handle = executor.launch(spec, NOW)
    status = wait_ended(executor, handle)

    out = (tmp_path / "logs" / "job-u.out").read_text()
    assert status.exit_code == 0, (status, out, (tmp_path / "logs" / "job-u.err").read_text())
    assert "wrote" not in out and "made" not in out, out
    assert out.strip().endswith(f"/{subtree.name}/job-job-u"), out  # still in its own


def test_a_jobs_cgroup_and_its_control_files_are_roots_and_not_writable_by_others(
    subtree: Path,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the daemon that makes the cgroups runs as root")
    path = JobCgroups(subtree).create("job-m")
    try:
        for entry in [path, *path.iterdir()]:
            st = entry.stat()
            assert st.st_uid == 0, entry
            assert stat.S_IMODE(st.st_mode) & 0o022 == 0, (entry, oct(st.st_mode))
    finally:
        path.rmdir()


def test_a_wrapper_that_cannot_enter_its_cgroup_does_not_start_the_job(tmp_path: Path) -> None:
    """A job that would run outside its cgroup would escape its stop: not started (126)."""
    executor = LocalExecutor(cgroups=JobCgroups(tmp_path / "not-a-cgroup"))
    (tmp_path / "not-a-cgroup").mkdir()
    ran = tmp_path / "ran"
    handle = executor.launch(job_spec(tmp_path, "job-x", "/usr/bin/touch", str(ran)), NOW)
    status = wait_ended(executor, handle)

    assert status.exit_code == 126 and "cannot enter its cgroup" in status.reason
    assert not ran.exists()


def test_a_run_that_never_started_leaves_no_cgroup(tmp_path: Path, subtree: Path) -> None:
    """The daemon stopped after making the job's cgroup, before its wrapper ran: the next
    daemon finds the run never started, and removes its cgroup (it was left behind)."""
    cgroups = JobCgroups(subtree)
    cgroups.create("job-r")
    executor = LocalExecutor(log_dir=tmp_path / "logs", cgroups=cgroups)

    (result,) = executor.adopt([RunHandle("job-r", "local", "", NOW)], NOW)

    assert isinstance(result, NotStarted)
    assert not cgroups.path_of("job-r").exists()


def test_a_job_id_never_names_a_cgroup_outside_the_subtree(subtree: Path) -> None:
    """What the daemon kills and removes is named by the job id (from the ledger): one with a
    ``/`` could name a cgroup elsewhere through an existing job's cgroup."""
    (subtree / "jobs").mkdir()
    (subtree / "victim").mkdir()
    cgroups = JobCgroups(subtree / "jobs")
    cgroups.create("x")

    assert cgroups.remove("x/../../victim")  # names none of ours: nothing to do
    assert cgroups.members("x/../../victim") == []
    with pytest.raises(ValueError, match="cannot name a cgroup"):
        cgroups.path_of("x/../../victim")
    assert (subtree / "victim").is_dir()


def test_a_later_attempt_is_not_killed_as_the_earlier_attempts_leftover(
    tmp_path: Path, subtree: Path
) -> None:
    """An attempt's cgroup not removable at its end (a process slow to die: here a child
    cgroup that is a mount point keeps it) is retried at each poll. Once the next attempt of
    the same job made its own cgroup under that name (the leftover gone by then), that retry
    killed the new attempt, its wrapper too ("ended without recording a status")."""
    cgroups = JobCgroups(subtree)
    executor = LocalExecutor(cgroups=cgroups)
    first = executor.launch(job_spec(tmp_path, "job-a", "/bin/true"), NOW)
    blocker = cgroups.path_of("job-a") / "slow-to-die"
    blocker.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "none", str(blocker)], check=False).returncode:
        pytest.skip(f"cannot mount a tmpfs on {blocker} (needs root)")
    try:
        assert wait_ended(executor, first).exit_code == 0
        assert cgroups.path_of("job-a").exists()  # left for a later poll
    finally:
        subprocess.run(["umount", str(blocker)], check=True)

    second = executor.launch(job_spec(tmp_path, "job-a", "/bin/sleep", "30"), NOW)
    try:
        time.sleep(0.5)  # the wrapper is in its new cgroup, the job started
        assert executor.poll([second], NOW) == []
        time.sleep(0.2)
        assert executor.poll([second], NOW) == [], "the second attempt was killed"
        assert len(cgroups.members("job-a")) == 2  # its wrapper and its job
    finally:
        cgroups.remove("job-a")
        executor.poll([second], NOW)
