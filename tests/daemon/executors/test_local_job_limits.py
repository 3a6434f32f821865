"""One job cannot starve the daemon: the OOM killer picks a job before the daemon, and each job
runs under the resource limits configured for it (real processes; as another user when root).
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# The daemon's side, in a process of its own: its oom_score_adj set as the unit sets it, one
# job launched (as argv[2], when given), its end awaited; prints the daemon's value after.
_DAEMON = """
import json, os, sys, time
from datetime import UTC, datetime
from pathlib import Path
from daemon.executors.base import LaunchSpec
from daemon.executors.local import LocalExecutor
try:  # the unit's value; lowering it needs CAP_SYS_RESOURCE, which a container may lack
    Path("/proc/self/oom_score_adj").write_text("-500")
except PermissionError:
    Path("/proc/self/oom_score_adj").write_text("500")
args = json.loads(sys.argv[1])
now = datetime.now(UTC)
executor = LocalExecutor(**args.pop("executor"))
args["log_dir"] = Path(args["log_dir"])
handle = executor.launch(LaunchSpec(**args, gpu_indices=(0,)), now)
end = time.monotonic() + 60
while not (done := executor.poll([handle], now)) and time.monotonic() < end:
    time.sleep(0.02)
print(json.dumps({"daemon": int(Path("/proc/self/oom_score_adj").read_text()),
                  "reason": done[0].reason if done else "did not end"}))
"""


def _job_user() -> tuple[int, int]:
    """``nobody`` when root (as a real job runs), else this user."""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        return nobody.pw_uid, nobody.pw_gid
    return os.geteuid(), os.getegid()


def _run_job(
    tmp_path: Path, job_id: str, script: str, executor: dict[str, object] | None = None
) -> tuple[dict[str, object], str]:
    """Run ``sh -c script`` as a job from a daemon process of its own; the daemon's report
    and the job's stdout."""
    uid, gid = _job_user()
    logs = tmp_path / "logs"
    spec = {"job_id": job_id, "argv": ("/bin/sh", "-c", script), "uid": uid, "gid": gid,
            "log_dir": str(logs), "executor": executor or {}}  # fmt: skip
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
