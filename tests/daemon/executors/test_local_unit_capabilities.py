"""The local executor with only the capabilities the systemd unit leaves it.

The unit's ``CapabilityBoundingSet=`` drops ``CAP_SYS_PTRACE``, and without it root cannot
read ``/proc/PID/environ`` of another user's process. These tests run the daemon's side in a
process given exactly the unit's bounding set (``setpriv``), as systemd starts it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.executors.base import LaunchSpec
from daemon.executors.jobfiles import process_start_ticks, session_members
from daemon.executors.local import LocalExecutor

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 1, 1, tzinfo=UTC)

_ADOPTING_DAEMON = """
import json, sys
from datetime import UTC, datetime
from daemon.executors.base import RunHandle
from daemon.executors.local import LocalExecutor
now = datetime.now(UTC)
handle = RunHandle(sys.argv[1], "local", sys.argv[2], now)
print(json.dumps([s.reason for s in LocalExecutor().poll([handle], now)]))
"""


def _unit_capabilities() -> str:
    """The unit's bounding set as ``setpriv --bounding-set`` takes it."""
    unit = (REPO / "systemd" / "carbond.service").read_text()
    found = re.search(r"^CapabilityBoundingSet=(.+)$", unit, re.MULTILINE)
    assert found is not None
    names = [c.removeprefix("CAP_").lower() for c in found.group(1).split()]
    return ",".join(["-all", *(f"+{n}" for n in names)])


def _as_the_unit(*argv: str) -> subprocess.CompletedProcess[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    return subprocess.run(
        [setpriv, "--bounding-set", _unit_capabilities(), "--inh-caps", "-all", "--", *argv],
        capture_output=True, text=True, timeout=60, check=False, cwd="/",
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )  # fmt: skip


def test_the_unit_s_capabilities_cannot_read_another_users_environ(tmp_path: Path) -> None:
    """The premise of the next test, so that it fails for the right reason."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a process as another user")
    nobody = pwd.getpwnam("nobody")
    sleeper = subprocess.Popen(
        ["sleep", "30"], user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[], cwd="/"
    )
    try:
        read = _as_the_unit("cat", f"/proc/{sleeper.pid}/environ")
        assert read.returncode != 0 and "Permission denied" in read.stderr
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_adopted_job_whose_wrapper_died_is_ended_under_the_units_capabilities(
    tmp_path: Path,
) -> None:
    """A restarted daemon (under the unit) that found an adopted job's wrapper gone (the OOM
    killer) reported the job ended, its GPU free, while the job ran on: it tells the job's
    processes from a later session's by their ``CARBOND_JOB_ID``, which it read from
    ``/proc/PID/environ``, unreadable to root without ``CAP_SYS_PTRACE`` when the job is
    another user's. So nothing was killed. It now reads it as the process's own user."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a job as another user")
    nobody = pwd.getpwnam("nobody")
    logs = tmp_path / "logs"
    before = LocalExecutor(allow_root_jobs=False)
    spec = LaunchSpec("job-cap", ("sleep", "60"), nobody.pw_uid, nobody.pw_gid, (0,), logs)
    handle = before.launch(spec, NOW)
    wrapper = json.loads(handle.token)["pid"]
    job = None
    try:
        for _ in range(500):  # the job: the one process of the wrapper's session running sleep
            for pid in session_members(wrapper):
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep\0"):
                        job = pid
            if job is not None:
                break
            time.sleep(0.02)
        assert job is not None
        ticks = process_start_ticks(job)
        os.kill(wrapper, signal.SIGKILL)  # the wrapper only
        before._children[wrapper].wait()  # reaped by the daemon that started it, long gone

        adopted = _as_the_unit(sys.executable, "-c", _ADOPTING_DAEMON, "job-cap", handle.token)

        assert adopted.returncode == 0, adopted.stderr
        assert "without recording a status" in json.loads(adopted.stdout)[0]
        for _ in range(100):
            if process_start_ticks(job) != ticks:
                break
            time.sleep(0.02)
        assert process_start_ticks(job) != ticks  # not left running on its GPU
    finally:
        if job is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(job, signal.SIGKILL)
