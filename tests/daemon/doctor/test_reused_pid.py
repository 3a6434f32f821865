"""``carbond doctor`` run as root after the daemon stopped, its pid in ``health.json`` reused
by another user's process that holds the ledger open (readable by every user unless
``[ledger] private``): that process is not the daemon, and doctor must not report its limits,
cgroup and mounts as the daemon's. A real process of a real second user."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.doctor.cgroup import describe_cgroup
from daemon.doctor.running_daemon import describe_health, running_pid
from daemon.settings import Settings
from daemon.statedir import LEDGER_NAME
from daemon.supervision.health import HEALTH_NAME, Health
from tests.daemon.users import local_user


@pytest.fixture
def users_reader(tmp_path: Path) -> Iterator[int]:
    """The pid of another user's process holding ``tmp_path``'s ledger open, named in the
    ``health.json`` the daemon (this process) wrote there: its pid as if reused."""
    user = local_user("carbond-pidtest")
    ledger = tmp_path / LEDGER_NAME
    ledger.write_bytes(b"")
    ledger.chmod(0o644)
    fd = os.open(ledger, os.O_RDONLY)
    try:
        reader = subprocess.Popen(  # opened as root here, held by the user's process there
            ["sleep", "60"], pass_fds=[fd], user=user.pw_uid, group=user.pw_gid, extra_groups=[]
        )
    finally:
        os.close(fd)
    try:
        Health().write(tmp_path / HEALTH_NAME, datetime.now(UTC))
        record = json.loads((tmp_path / HEALTH_NAME).read_text())
        (tmp_path / HEALTH_NAME).write_text(json.dumps({**record, "pid": reader.pid}))
        yield reader.pid
    finally:
        reader.kill()
        reader.wait()


def test_another_users_process_holding_the_ledger_is_not_the_daemon(
    tmp_path: Path, users_reader: int
) -> None:
    settings = Settings(state_dir=tmp_path)

    assert running_pid(settings) is None
    status, detail = describe_cgroup(settings)
    assert status == "skip" and "no running daemon to ask" in detail, detail
    status, detail = describe_health(settings, datetime.now(UTC))
    assert status == "skip" and f"daemon not running (pid {users_reader}" in detail, detail
