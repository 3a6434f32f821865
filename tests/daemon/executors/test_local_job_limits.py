"""One job cannot starve the daemon: the OOM killer picks a job before the daemon, and each job
runs under the resource limits configured for it (real processes; as another user when root).
"""

from __future__ import annotations

import json
import os
import pwd
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]

# The daemon's side, in a process of its own: its oom_score_adj set as the unit sets it, its
# local executor built from a config file as `carbond run` builds it, one job launched, its end
# awaited; prints the daemon's own oom_score_adj and limits after.
_DAEMON = """
import json, os, sys, time
from datetime import UTC, datetime
from pathlib import Path
from daemon.assemble import build_executors
from daemon.executors.base import LaunchSpec
from daemon.settings import load_settings
try:  # the unit's value; lowering it needs CAP_SYS_RESOURCE, which a container may lack
    Path("/proc/self/oom_score_adj").write_text("-500")
except PermissionError:
    Path("/proc/self/oom_score_adj").write_text("500")
args = json.loads(sys.argv[1])
now = datetime.now(UTC)
executor = build_executors(load_settings(Path(args.pop("config"))))["local"]
args["log_dir"] = Path(args["log_dir"])
handle = executor.launch(LaunchSpec(**args, gpu_indices=(0,)), now)
end = time.monotonic() + 60
while not (done := executor.poll([handle], now)) and time.monotonic() < end:
    time.sleep(0.02)
print(json.dumps({"daemon": int(Path("/proc/self/oom_score_adj").read_text()),
                  "limits": Path("/proc/self/limits").read_text(),
                  "reason": done[0].reason if done else "did not end"}))
"""


def _job_user() -> tuple[int, int]:
    """``nobody`` when root (as a real job runs), else this user."""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        return nobody.pw_uid, nobody.pw_gid
    return os.geteuid(), os.getegid()


def _run_job(
    tmp_path: Path, job_id: str, script: str, config: str = ""
) -> tuple[dict[str, Any], str]:
    """Run ``sh -c script`` as a job from a daemon process of its own, configured by
    ``config`` (TOML); the daemon's report and the job's stdout."""
    uid, gid = _job_user()
    logs = tmp_path / "logs"
    toml = tmp_path / "carbond.toml"
    toml.write_text(f'state_dir = "{tmp_path / "state"}"\n{config}')
    spec = {"job_id": job_id, "argv": ("/bin/sh", "-c", script), "uid": uid, "gid": gid,
            "log_dir": str(logs), "config": str(toml)}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", _DAEMON, json.dumps(spec)], capture_output=True, text=True,
        timeout=120, check=False, cwd="/", env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["reason"] == "", (report, (logs / f"{job_id}.err").read_text())
    return report, (logs / f"{job_id}.out").read_text()


def test_the_oom_killer_picks_a_job_before_the_daemon_and_the_wrapper(tmp_path: Path) -> None:
    """Jobs inherited the daemon's ``oom_score_adj`` (the unit's -500), so under memory
    pressure the OOM killer weighed the daemon and a job alike and could pick the daemon.
    Each job now starts at the kernel's default 0; the daemon and the job's wrapper keep theirs.
    (Here the daemon's is -500 where the test may lower it, else +500: the job's is 0 either
    way.)"""
    report, out = _run_job(
        tmp_path, "oom", "cat /proc/self/oom_score_adj; cat /proc/$PPID/oom_score_adj"
    )
    job, wrapper = (int(line) for line in out.split())
    assert report["daemon"] in (-500, 500)
    assert (job, wrapper) == (0, report["daemon"])


def _limits(text: str) -> dict[str, tuple[str, str]]:
    """``/proc/PID/limits`` as ``{name: (soft, hard)}``."""
    rows = {}
    for line in text.splitlines()[1:]:
        name, soft, hard = line[:26].strip(), *line[26:].split()[:2]
        rows[name] = (soft, hard)
    return rows


def _below_hard(which: int, wanted: int) -> int:
    hard = resource.getrlimit(which)[1]
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard - 1)


def test_a_job_runs_under_the_configured_limits_and_the_daemon_keeps_its_own(
    tmp_path: Path,
) -> None:
    """A job ran with the daemon's own limits (the unit's: NPROC unlimited for root, 65536
    open files, core dumps as root allows), so one user's fork bomb or runaway files took what
    the daemon needed. ``[executors.local.limits]`` now sets them in the job's process, after
    its switch to the job's user, before exec (soft and hard alike), core dumps off by
    default; the daemon's own limits are unchanged."""
    nproc = _below_hard(resource.RLIMIT_NPROC, 4321)
    nofile = _below_hard(resource.RLIMIT_NOFILE, 1000)
    config = f"[executors.local.limits]\nnproc = {nproc}\nnofile = {nofile}\n"
    config += "fsize_bytes = 123456789\n"  # core_bytes left out: its default, 0
    report, out = _run_job(tmp_path, "limits", "cat /proc/self/limits", config)
    job = _limits(out)
    assert job["Max processes"] == (str(nproc), str(nproc))
    assert job["Max open files"] == (str(nofile), str(nofile))
    assert job["Max file size"] == ("123456789", "123456789")
    assert job["Max core file size"] == ("0", "0")
    daemon, ours = _limits(report["limits"]), _limits(Path("/proc/self/limits").read_text())
    for name in ("Max processes", "Max open files", "Max file size", "Max core file size"):
        assert daemon[name] == ours[name], name


def test_a_limit_above_the_daemons_hard_limit_is_that_limit_and_the_job_is_told(
    tmp_path: Path,
) -> None:
    """Raising a hard limit needs a privilege the unit does not give the daemon: a job asked
    for more gets the daemon's hard limit, said in its log, and still runs."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("this process's open-files limit has no hard limit to be above")
    config = f'[executors.local.limits]\nnofile = {hard + 1}\nnproc = "unlimited"\n'
    _, out = _run_job(tmp_path, "above", "cat /proc/self/limits", config)
    assert _limits(out)["Max open files"] == (str(hard), str(hard))
    err = (tmp_path / "logs" / "above.err").read_text()
    assert f"limits.nofile = {hard + 1} is above the daemon's hard limit {hard}" in err
