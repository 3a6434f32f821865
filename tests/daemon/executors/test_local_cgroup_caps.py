"""Per-job caps in the jobs' cgroups (``[executors.local] memory_max_bytes``,
``memory_high_bytes``, ``pids_max``), on a real cgroup v2 subtree the tests make: a job that
forks without end is stopped at its own ``pids.max``; a cap whose controller the subtree
cannot hand to the jobs' cgroups is said at start, never dropped silently. The cases that
need the controller itself skip where the cgroup2 hierarchy does not have it (a hybrid host
keeps ``memory`` and ``pids`` on cgroup v1)."""

from __future__ import annotations

import errno
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.endings.rules import final_state
from daemon.executors.base import ExitStatus, RunHandle
from daemon.executors.errors import ExecutorError
from daemon.executors.local import LocalExecutor
from daemon.executors.local_cgroup import job_cgroups
from daemon.executors.local_cgroup_caps import JobCaps, unavailable
from daemon.executors.local_cgroup_jobs import JobCgroups
from tests.daemon.executors.cgroup_subtree import cgroup_subtree, controller_whereabouts
from tests.daemon.executors.local_jobs import NOW, job_spec, wait_ended

PY = sys.executable

# Forks children that sleep until it has 100 of them or a fork fails; prints how many it
# made and the failure's errno, then exits 0 (its children are the cgroup's to end).
FORKER = (
    "import os, sys, time\n"
    "made, err = 0, 0\n"
    "while made < 100:\n"
    "    try:\n"
    "        pid = os.fork()\n"
    "    except OSError as exc:\n"
    "        err = exc.errno\n"
    "        break\n"
    "    if pid == 0:\n"
    "        time.sleep(60)\n"
    "        os._exit(0)\n"
    "    made += 1\n"
    "print(made, err, flush=True)\n"
)


@contextmanager
def _inner(controllers: tuple[str, ...] = ()) -> Iterator[Path]:
    """A cgroup under a new test subtree, as the daemon's subtree, whose parent enables
    ``controllers`` for it (skipped where the hierarchy does not have one); none enabled
    otherwise, as on a host whose unit is not given them."""
    with cgroup_subtree() as (path, _):
        have = (path / "cgroup.controllers").read_text().split()
        missing = [c for c in controllers if c not in have]
        if missing:
            where = "; ".join(controller_whereabouts(c) for c in missing)
            pytest.skip(f"the cgroup2 hierarchy here has no {', '.join(missing)} controller "
                        f"(cgroup.controllers: {' '.join(have) or 'none'}; {where})")  # fmt: skip
        for controller in controllers:
            (path / "cgroup.subtree_control").write_text(f"+{controller}")
        inner = path / "carbond"
        inner.mkdir()
        yield inner


def test_a_fork_bomb_is_stopped_at_its_own_pids_max(tmp_path: Path) -> None:
    """pids.max = 20 on the job's cgroup: its forks fail (EAGAIN) once 20 processes, the
    wrapper and the job counted, are in it; the daemon and other jobs are untouched."""
    with _inner(("pids",)) as subtree:
        cgroups = job_cgroups(str(subtree), caps=JobCaps(pids_max=20))
        assert cgroups is not None and cgroups.caps == JobCaps(pids_max=20)
        executor = LocalExecutor(cgroups=cgroups)
        handle = executor.launch(job_spec(tmp_path, "bomb", PY, "-c", FORKER), NOW)
        assert (subtree / "job-bomb" / "pids.max").read_text().strip() == "20"
        status = wait_ended(executor, handle)
    assert status.exit_code == 0, status
    made, err = (int(word) for word in (tmp_path / "logs" / "bomb.out").read_text().split())
    assert err == errno.EAGAIN
    assert 0 < made <= 20 - 2  # the wrapper and the job itself hold two of the 20
    # its end says why its forks failed
    cap = "out of tasks: its cgroup's pids.max (20, executors.local.pids_max) refused "
    assert cap in status.reason, status


def test_memory_caps_are_written_before_the_job_joins(tmp_path: Path) -> None:
    """memory_swap_max_bytes left out: memory.swap.max 0, so the job cannot swap past its
    memory.max (where the kernel accounts swap: else said at start, and not written)."""
    caps = JobCaps.of_settings(memory_max_bytes=256 << 20, memory_high_bytes=192 << 20,
                               memory_swap_max_bytes=None, pids_max=None)  # fmt: skip
    with _inner(("memory",)) as subtree:
        accounted = (subtree / "memory.swap.max").exists()
        cgroups = job_cgroups(str(subtree), caps=caps)
        assert cgroups is not None
        assert cgroups.caps == (caps if accounted else caps.without(["swap"]))
        executor = LocalExecutor(cgroups=cgroups)
        code = "print(open('/proc/self/cgroup').read().strip())"
        handle = executor.launch(job_spec(tmp_path, "mem", PY, "-c", code), NOW)
        job = subtree / "job-mem"
        names = ("memory.max", "memory.high", "memory.swap.max")
        written = [(job / name).read_text().strip() for name in names if (job / name).exists()]
        status = wait_ended(executor, handle)
    assert status.exit_code == 0, status
    assert written == [str(256 << 20), str(192 << 20), "0"][: 3 if accounted else 2]
    assert (tmp_path / "logs" / "mem.out").read_text().strip().endswith("/carbond/job-mem")


def test_a_cap_whose_controller_the_subtree_lacks_is_said_at_start(tmp_path: Path) -> None:
    """The subtree's parent does not hand it the pids controller (a unit without
    Delegate=yes, a hybrid host): the jobs get their cgroups, without that cap, and the
    daemon says so once at start, naming the setting and why."""
    with _inner() as subtree, capture_logs() as events:
        cgroups = job_cgroups(str(subtree), caps=JobCaps(pids_max=20))
        assert cgroups is not None
        assert cgroups.caps == JobCaps()
        executor = LocalExecutor(cgroups=cgroups)
        handle = executor.launch(job_spec(tmp_path, "j", PY, "-c", "pass"), NOW)
        status = wait_ended(executor, handle)
    assert status.exit_code == 0, status
    (warning,) = (e for e in events if e["event"] == "local_cgroup_caps_unavailable")
    assert warning["log_level"] == "warning"
    assert warning["settings"] == "executors.local.pids_max"
    assert warning["reason"].startswith(
        f"executors.local.pids_max: the pids controller is not available in {subtree} "
        "(its cgroup.controllers lacks it"
    ), warning
    (enabled,) = (e for e in events if e["event"] == "local_cgroups_enabled")
    assert enabled["caps"] == "none"


def test_caps_without_a_subtree_are_said_at_start(tmp_path: Path) -> None:
    with capture_logs() as events:
        assert job_cgroups("off", caps=JobCaps(memory_max_bytes=1 << 30, pids_max=64)) is None
    said = {e["settings"]: e["reason"] for e in events
            if e["event"] == "local_cgroup_caps_unavailable"}  # fmt: skip
    assert said == {
        "executors.local.memory_max_bytes": "jobs get no cgroup: off in the settings "
        "(executors.local.cgroup)",
        "executors.local.pids_max": "jobs get no cgroup: off in the settings "
        "(executors.local.cgroup)",
    }


def test_a_cap_that_cannot_be_written_fails_the_launch_not_silently(tmp_path: Path) -> None:
    """A cgroup without the cap's control file (its controller not enabled): the job does
    not run without its cap; its launch fails naming the file, and its cgroup is removed."""
    with _inner() as subtree:
        executor = LocalExecutor(cgroups=JobCgroups(subtree, caps=JobCaps(pids_max=20)))
        with pytest.raises(ExecutorError) as info:
            executor.launch(job_spec(tmp_path, "j", PY, "-c", "pass"), NOW)
        left = sorted(p.name for p in subtree.iterdir() if p.is_dir())
    assert "cannot set its cap pids.max = 20: No such file or directory" in str(info.value)
    assert str(subtree / "job-j" / "pids.max") in str(info.value)
    assert left == []
    assert not (tmp_path / "logs" / "j.spec.json").exists()  # nothing for a wrapper to run


# Allocates and touches 512 MiB, far past its cap; prints "survived" if it was not killed.
HOG = "b = b'x' * (512 << 20)\nprint('survived', flush=True)\n"


def test_a_job_killed_at_its_memory_max_says_so(tmp_path: Path) -> None:
    """The OOM killer in the job's cgroup ended it: its end said only "killed by SIGKILL",
    which any SIGKILL is. It now says the job ran out of memory at its cap."""
    with _inner(("memory",)) as subtree:
        caps = JobCaps.of_settings(memory_max_bytes=64 << 20, memory_high_bytes=None,
                                   memory_swap_max_bytes=None, pids_max=None)  # fmt: skip
        cgroups = job_cgroups(str(subtree), caps=caps)  # memory.swap.max 0: no swapping
        assert cgroups is not None
        executor = LocalExecutor(cgroups=cgroups)
        handle = executor.launch(job_spec(tmp_path, "hog", PY, "-c", HOG), NOW)
        status = wait_ended(executor, handle)
    assert status.signal == signal.SIGKILL, status
    assert status.out_of_memory == (
        f"out of memory: the OOM killer killed 1 of its processes at its cgroup's memory.max "
        f"({64 << 20} bytes, executors.local.memory_max_bytes)"
    )
    assert status.reason == f"killed by SIGKILL; {status.out_of_memory}"
    assert final_state(status, cancel_requested_at=None) == (
        "failed",
        f"killed by signal 9; {status.out_of_memory}",
    )


def _memory_subtree(tmp_path: Path, *, swap_accounted: bool) -> Path:
    """A directory with the files of a subtree whose parent hands it the memory controller
    (and enables it for its children), with ``memory.swap.max`` where the kernel accounts
    swap (cgroup2 here may have no memory controller: its files cannot be made by hand)."""
    subtree = tmp_path / "subtree"
    subtree.mkdir(parents=True)
    (subtree / "cgroup.controllers").write_text("memory\n")
    (subtree / "cgroup.subtree_control").write_text("memory\n")
    if swap_accounted:
        (subtree / "memory.swap.max").write_text("max\n")
    return subtree


def test_no_swap_accounting_is_said_naming_the_setting_that_asked_for_it(tmp_path: Path) -> None:
    """A kernel booted with swapaccount=0 has no memory.swap.max: every launch would fail
    writing it. It is said as the one cap not applied (the memory caps still are), naming
    memory_max_bytes when its default asked for it, memory_swap_max_bytes when set."""
    defaulted = JobCaps.of_settings(memory_max_bytes=1 << 30, memory_high_bytes=None,
                                    memory_swap_max_bytes=None, pids_max=None)  # fmt: skip
    assert defaulted.files() == {"memory.max": 1 << 30, "memory.swap.max": 0}
    subtree = _memory_subtree(tmp_path, swap_accounted=False)
    why = (f"{subtree} has no memory.swap.max: the kernel does not account swap to cgroups "
           "(booted with swapaccount=0): a job's memory.max bounds its RAM only")  # fmt: skip
    problems = unavailable(subtree, defaulted, enabled=True)
    assert problems == {"swap": f"executors.local.memory_max_bytes: {why}"}
    assert defaulted.without(problems).files() == {"memory.max": 1 << 30}
    assert defaulted.settings_of("memory") == "executors.local.memory_max_bytes"
    capped = JobCaps.of_settings(memory_max_bytes=None, memory_high_bytes=None,
                                 memory_swap_max_bytes=1 << 20, pids_max=None)  # fmt: skip
    assert unavailable(subtree, capped, enabled=True) == {
        "swap": f"executors.local.memory_swap_max_bytes: {why}"
    }
    assert capped.without(["swap"]).files() == {}
    accounted = _memory_subtree(tmp_path / "ok", swap_accounted=True)
    assert unavailable(accounted, defaulted, enabled=True) == {}
    assert unavailable(accounted, capped, enabled=True) == {}


def _events(tmp_path: Path, events: str, memory_max: str = "67108864\n") -> Path:
    """A directory with a cgroup's memory.events and memory.max as the kernel writes them
    (cgroup2 here may have no memory controller: its files cannot be made by hand)."""
    cgroup = tmp_path / "job-x"
    cgroup.mkdir()
    (cgroup / "memory.events").write_text(events)
    (cgroup / "memory.max").write_text(memory_max)
    return cgroup


def test_the_oom_killer_at_the_jobs_own_cap_is_told_from_memory_events(tmp_path: Path) -> None:
    cgroup = _events(tmp_path, "low 0\nhigh 0\nmax 31\noom 2\noom_kill 2\noom_group_kill 0\n")
    assert JobCgroups(tmp_path).out_of_memory("x") == (
        "out of memory: the OOM killer killed 2 of its processes at its cgroup's memory.max "
        "(67108864 bytes, executors.local.memory_max_bytes)"
    )
    # killed, its own cap never reached: the node or the unit ran out
    (cgroup / "memory.events").write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 1\n")
    assert JobCgroups(tmp_path).out_of_memory("x") == (
        "out of memory: the OOM killer killed 1 of its processes, the node or the carbond unit "
        "being out of memory (not its own memory.max)"
    )


def test_no_oom_kill_or_no_memory_controller_says_nothing(tmp_path: Path) -> None:
    _events(tmp_path, "low 0\nhigh 0\nmax 4\noom 0\noom_kill 0\n")
    assert JobCgroups(tmp_path).out_of_memory("x") == ""
    assert JobCgroups(tmp_path).out_of_memory("no-such-job") == ""


def test_the_forks_pids_max_refused_are_told_from_pids_events(tmp_path: Path) -> None:
    """A fork bomb held at its pids.max ran on, each fork failing: its end said nothing of
    the cap. pids.events' ``max`` counts the refusals (a directory with the kernel's files:
    cgroup2 here may have no pids controller)."""
    cgroup = tmp_path / "job-x"
    cgroup.mkdir()
    (cgroup / "pids.max").write_text("20\n")
    (cgroup / "pids.events").write_text("max 1234\n")
    assert JobCgroups(tmp_path).forks_refused("x") == (
        "out of tasks: its cgroup's pids.max (20, executors.local.pids_max) refused 1234 forks"
    )
    (cgroup / "pids.events").write_text("max 0\n")
    assert JobCgroups(tmp_path).forks_refused("x") == ""
    assert JobCgroups(tmp_path).forks_refused("no-such-job") == ""


def test_a_job_found_ended_after_a_restart_without_its_token_says_it_ran_out_of_memory(
    tmp_path: Path,
) -> None:
    """The daemon stopped before recording the run's token and the job ended meanwhile,
    killed at its memory.max: the next daemon found its end by its files (``adopt`` of a
    tokenless run) and removed its cgroup without reading memory.events and pids.events, so
    its end said nothing of either (a directory with the kernel's files stands for the
    cgroup: cgroup2 here may have neither controller)."""
    before = LocalExecutor()
    handle = before.launch(job_spec(tmp_path, "lost", PY, "-c", "raise SystemExit(3)"), NOW)
    assert wait_ended(before, handle).exit_code == 3
    cgroup = _events(tmp_path, "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n")
    (cgroup / "pids.max").write_text("20\n")
    (cgroup / "pids.events").write_text("max 7\n")
    cgroup.rename(tmp_path / "job-lost")
    after = LocalExecutor(log_dir=tmp_path / "logs", cgroups=JobCgroups(tmp_path))

    (status,) = after.adopt([RunHandle("lost", "local", "", NOW)], NOW)

    assert isinstance(status, ExitStatus) and status.exit_code == 3, status
    oom = (
        "out of memory: the OOM killer killed 1 of its processes at its cgroup's memory.max "
        "(67108864 bytes, executors.local.memory_max_bytes)"
    )
    assert status.out_of_memory == oom
    forks = "out of tasks: its cgroup's pids.max (20, executors.local.pids_max) refused 7 forks"
    assert status.reason == f"{oom}; {forks}", status
