"""``carbond doctor``'s ``cgroup`` line: whether local jobs get cgroups of their own, as the
running daemon finds them (its /proc files), or an explicit path as doctor sees it."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.doctor.cgroup import describe_cgroup
from daemon.settings import Settings
from daemon.statedir import LEDGER_NAME
from daemon.supervision.health import HEALTH_NAME, Health
from tests.daemon.executors.cgroup_subtree import cgroup_subtree, controller_whereabouts
from tests.daemon.users import local_user


def _settings(tmp_path: Path, cgroup: str = "auto") -> Settings:
    return Settings(state_dir=tmp_path, executors={"local": {"cgroup": cgroup}})


def test_off_is_a_skip_that_says_what_jobs_lose(tmp_path: Path) -> None:
    status, detail = describe_cgroup(_settings(tmp_path, "off"))
    assert status == "skip" and detail.startswith('off (executors.local.cgroup = "off")')
    assert "setsid" in detail


def test_auto_without_a_running_daemon_has_nothing_to_ask(tmp_path: Path) -> None:
    status, detail = describe_cgroup(_settings(tmp_path))
    assert status == "skip" and "no running daemon" in detail


def test_an_explicit_path_that_is_no_cgroup_fails(tmp_path: Path) -> None:
    status, detail = describe_cgroup(_settings(tmp_path, str(tmp_path)))
    assert status == "fail"
    assert f"{tmp_path} is not on a cgroup2 mount" in detail
    assert "as doctor sees it" in detail


def test_an_explicit_cgroup_passes(tmp_path: Path) -> None:
    with cgroup_subtree() as (path, _):
        status, detail = describe_cgroup(_settings(tmp_path, str(path)))
    assert status == "pass", detail
    assert f"each local job in a cgroup of its own under {path}" in detail
    assert "not root" not in detail


def test_the_running_daemons_own_cgroup_is_judged(tmp_path: Path) -> None:
    """A running daemon (here: this process, holding the ledger open and named in
    health.json) whose cgroup systemd did not delegate: SKIP, with why, from its view."""
    Health().write(tmp_path / HEALTH_NAME, datetime.now(UTC))
    with (tmp_path / LEDGER_NAME).open("w"):
        status, detail = describe_cgroup(_settings(tmp_path))
    own = Path("/proc/self/cgroup").read_text()
    if "0::" not in own:
        assert status == "skip" and "no cgroup v2" in detail, detail
        return
    assert status == "skip", detail  # a test runner's cgroup is nobody's delegated subtree
    assert f"(daemon pid {os.getpid()})" in detail
    assert "Delegate=yes" in detail or "not under a cgroup2 mount" in detail, detail


def test_a_daemon_running_as_its_own_user_is_judged_as_that_user(tmp_path: Path) -> None:
    """A daemon of ``User=carbond`` with ``Delegate=yes``: systemd hands the unit's cgroup to
    that user, which is then the daemon's alone. doctor, as root, judged it as root's and
    said it was another user's (so SKIP, jobs without cgroups) while the daemon used it."""
    user = local_user("carbond-cgdaemon")
    os.chown(tmp_path, user.pw_uid, user.pw_gid)  # the daemon's state dir is its user's
    ledger = tmp_path / LEDGER_NAME
    ledger.write_bytes(b"")
    with cgroup_subtree() as (path, _):
        for entry in (path, path / "cgroup.procs", path / "cgroup.threads",
                      path / "cgroup.subtree_control"):  # fmt: skip
            os.chown(entry, user.pw_uid, user.pw_gid)
        os.setxattr(path, "user.delegate", b"1")
        with ledger.open("rb") as held:
            daemon = subprocess.Popen(
                ["sleep", "60"], stdin=held, user=user.pw_uid, group=user.pw_gid,
                extra_groups=[], cwd="/",
            )  # fmt: skip
        try:
            (path / "cgroup.procs").write_text(str(daemon.pid))  # as systemd starts it there
            Health().write(tmp_path / HEALTH_NAME, datetime.now(UTC))
            record = json.loads((tmp_path / HEALTH_NAME).read_text())
            (tmp_path / HEALTH_NAME).write_text(json.dumps({**record, "pid": daemon.pid}))

            status, detail = describe_cgroup(_settings(tmp_path))
        finally:
            daemon.kill()
            daemon.wait()
    assert status == "pass", detail
    assert f"under {path} (delegated by systemd) (daemon pid {daemon.pid})" in detail
    # its jobs run as its user, who owns their cgroups: they may leave them
    assert detail.endswith(f"; but the daemon is not root (uid {user.pw_uid}): its jobs run "
                           "as its user, who owns their cgroups, so a job's process may move "
                           "itself out of its cgroup, or kill or freeze it; a job's stop "
                           "reaches only what stays in its cgroup"), detail  # fmt: skip


def _capped(tmp_path: Path, cgroup: str, **caps: int) -> Settings:
    return Settings(state_dir=tmp_path, executors={"local": {"cgroup": cgroup, **caps}})


def test_a_cap_whose_controller_the_subtree_lacks_fails(tmp_path: Path) -> None:
    """The subtree's parent does not hand it the pids controller: the jobs would run without
    executors.local.pids_max. doctor passed it as "each local job in a cgroup of its own"."""
    with cgroup_subtree() as (path, _):
        inner = path / "carbond"  # its parent enables no controller for it
        inner.mkdir()
        status, detail = describe_cgroup(_capped(tmp_path, str(inner), pids_max=64))
    assert status == "fail", detail
    assert f"each local job in a cgroup of its own under {inner}" in detail
    assert detail.endswith(
        f"; but executors.local.pids_max: the pids controller is not available in {inner} "
        "(its cgroup.controllers lacks it: the cgroup above does not hand it down; systemd's "
        "Delegate=yes does, a hybrid hierarchy keeps it on cgroup v1): jobs run without it"
    ), detail


def test_a_cap_its_subtree_can_enable_is_named(tmp_path: Path) -> None:
    with cgroup_subtree() as (path, _):
        if "pids" not in (path / "cgroup.controllers").read_text().split():
            pytest.skip(f"the cgroup2 hierarchy here has no pids controller "
                        f"({controller_whereabouts('pids')})")  # fmt: skip
        (path / "cgroup.subtree_control").write_text("+pids")
        inner = path / "carbond"
        inner.mkdir()
        status, detail = describe_cgroup(_capped(tmp_path, str(inner), pids_max=64))
    assert status == "pass", detail
    assert "capped at pids.max 64" in detail


def test_caps_with_the_cgroups_off_fail(tmp_path: Path) -> None:
    status, detail = describe_cgroup(_capped(tmp_path, "off", memory_max_bytes=1 << 30))
    assert status == "fail", detail
    assert "executors.local.memory_max_bytes is not applied" in detail


def test_two_caps_of_one_controller_not_applied_read_as_two(tmp_path: Path) -> None:
    config = _capped(tmp_path, "off", memory_max_bytes=1 << 30, memory_high_bytes=1 << 29)
    status, detail = describe_cgroup(config)
    assert status == "fail", detail
    assert (
        "executors.local.memory_max_bytes and executors.local.memory_high_bytes are not applied"
    ) in detail
