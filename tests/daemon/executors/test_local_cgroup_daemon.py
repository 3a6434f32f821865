"""The daemon's side of the jobs' cgroups: the ``[executors.local] cgroup`` setting, the one
event saying whether jobs get cgroups (and why not), and the daemon moving itself to a leaf
of its subtree. Cases on a real cgroup run on one the tests make (skipped where there is
none)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.assemble import build_executors
from daemon.executors.local import LocalExecutor
from daemon.executors.local_cgroup import DAEMON_LEAF, job_cgroups
from daemon.settings import ConfigError, Settings, load_settings
from tests.daemon.executors.cgroup_subtree import cgroup_subtree
from tests.daemon.users import as_user, cli_as, local_user, open_dir

REPO = Path(__file__).resolve().parents[3]
V1_ONLY = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
HERE = {"name": "here", "zone": "CA-QC", "executor": "local",
        "gpus": [{"type": "A100-80GB", "count": 1}]}  # fmt: skip


def test_the_setting_is_auto_off_or_an_absolute_path_at_its_line(tmp_path: Path) -> None:
    assert Settings().executors.local.cgroup == "auto"
    config = tmp_path / "carbond.toml"
    config.write_text('[executors.local]\ncgroup = "/sys/fs/cgroup/carbond"\n')
    assert load_settings(config).executors.local.cgroup == "/sys/fs/cgroup/carbond"
    config.write_text('[executors.local]\ngrace_s = 5\ncgroup = "carbond.slice"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    (problem,) = info.value.problems
    assert problem.startswith(f"{config}:3: executors.local.cgroup: ")
    assert '"auto", "off" or an absolute path' in problem


def test_without_a_usable_cgroup_jobs_run_as_before_and_it_is_said_once(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text(V1_ONLY)
    (tmp_path / "cgroup").write_text("4:memory:/x\n")
    with capture_logs() as events:
        cgroups = job_cgroups(
            proc_cgroup=tmp_path / "cgroup", mountinfo=tmp_path / "mountinfo"
        )  # fmt: skip
    assert cgroups is None
    (event,) = events
    assert event["event"] == "local_cgroups_unavailable"
    assert "no cgroup2 file system is mounted" in event["reason"]
    assert "setsid" in event["effect"]


def test_off_gives_the_local_executor_no_cgroups(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, executors={"local": {"cgroup": "off"}},
                        regions=[HERE])  # fmt: skip
    with capture_logs() as events:
        local = build_executors(settings)["local"]
    assert isinstance(local, LocalExecutor) and local.cgroups is None
    assert [e["reason"] for e in events if e["event"] == "local_cgroups_unavailable"] == [
        "off in the settings (executors.local.cgroup)"
    ]


def test_an_explicit_subtree_gives_the_local_executor_its_cgroups(tmp_path: Path) -> None:
    with cgroup_subtree() as (path, _):
        settings = Settings(state_dir=tmp_path, executors={"local": {"cgroup": str(path)}},
                            regions=[HERE])  # fmt: skip
        with capture_logs() as events:
            local = build_executors(settings)["local"]
    assert isinstance(local, LocalExecutor) and local.cgroups is not None
    assert local.cgroups.root == path
    (event,) = (e for e in events if e["event"].startswith("local_cgroups"))
    assert event["event"] == "local_cgroups_enabled" and event["cgroup"] == str(path)
    if os.geteuid() == 0:  # a root daemon's jobs cannot leave their cgroups: nothing to note
        assert "note" not in event


def test_a_daemon_not_root_says_its_jobs_may_leave_their_cgroups(tmp_path: Path) -> None:
    """A daemon run as its own user runs only that user's jobs: they own their cgroups as
    it does, so they may move out of them. It said "each local job in a cgroup of its own"
    all the same; its local_cgroups_enabled event notes it."""
    user = local_user("carbond-cgdaemon")
    cli = cli_as(user, open_dir())
    code = (
        "import json, sys\n"
        "from structlog.testing import capture_logs\n"
        "from daemon.executors.local_cgroup import job_cgroups\n"
        "with capture_logs() as events:\n"
        "    job_cgroups(sys.argv[1])\n"
        "print(json.dumps(events))\n"
    )
    with cgroup_subtree() as (path, _):
        for entry in (path, path / "cgroup.procs", path / "cgroup.threads",
                      path / "cgroup.subtree_control"):  # fmt: skip
            os.chown(entry, user.pw_uid, user.pw_gid)  # as systemd delegates it to User=
        done = as_user(user, [cli.python, "-c", code, str(path)], cli.env)
    assert done.returncode == 0, done.stderr
    (event,) = json.loads(done.stdout)
    assert event["event"] == "local_cgroups_enabled" and event["cgroup"] == str(path)
    assert event["note"].startswith(f"the daemon is not root (uid {user.pw_uid}): its jobs "
                                    "run as its user, who owns their cgroups"), event  # fmt: skip


def test_a_daemon_in_its_subtrees_top_moves_itself_to_a_leaf() -> None:
    """Processes in the subtree's top would keep it from handing controllers to the jobs'
    cgroups (the "no internal processes" rule): the daemon moves to ``<subtree>/daemon``."""
    code = (
        "import os, sys\n"
        "from daemon.executors.local_cgroup import job_cgroups\n"
        "open(os.path.join(sys.argv[1], 'cgroup.procs'), 'w').write(str(os.getpid()))\n"
        "cgroups = job_cgroups(sys.argv[1])\n"
        "print('ROOT', cgroups.root if cgroups else None, file=sys.stderr)\n"
        "print(open('/proc/self/cgroup').read(), file=sys.stderr)\n"
    )
    with cgroup_subtree() as (path, _):
        done = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60, check=False,
        )  # fmt: skip
        left_in_top = (path / "cgroup.procs").read_text()
    assert done.returncode == 0, done.stderr
    cgroup = done.stderr.split("ROOT ", 1)[1]
    assert cgroup.startswith(f"{path}\n"), done.stderr
    assert f"0::/{path.name}/{DAEMON_LEAF}\n" in cgroup, cgroup
    assert left_in_top == ""


def test_a_daemon_with_no_local_region_neither_probes_nor_moves(tmp_path: Path) -> None:
    """The demo and simulated or Slurm-only daemons run no job here: no cgroup is probed
    (no event, no move into a leaf), even with an explicit subtree named."""
    settings = Settings(
        state_dir=tmp_path,
        executors={"local": {"cgroup": "/sys/fs/cgroup/nowhere"}},
        regions=[{**HERE, "name": "sim", "executor": "simulated"}],
    )
    with capture_logs() as events:
        local = build_executors(settings)["local"]
        followed = build_executors(settings, follow={"local"})["local"]
    assert isinstance(local, LocalExecutor) and local.cgroups is None
    assert isinstance(followed, LocalExecutor) and followed.cgroups is None
    assert [e["event"] for e in events if e["event"].startswith("local_cgroups")] == [
        "local_cgroups_unavailable"  # only the follower of a local run probes
    ]
