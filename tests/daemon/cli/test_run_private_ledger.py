"""``[ledger] private = true`` against a real ``carbond run`` and a real other user.

``ledger.db`` and its ``-wal``/``-shm`` are readable by every user (their ``carbond jobs``,
``status``, ``report``): any of them may then hold a shared ``fcntl`` lock on byte 120 of
``ledger.db-shm`` (SQLite's WAL write lock), and every write of the daemon fails with "database
is locked" while they hold it: no job is ingested. With ``private = true`` the daemon makes the
ledger its own at start (fresh 0600 files): the lock that user took before no longer stops it,
and they cannot take a new one.
"""

from __future__ import annotations

import pwd
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.cli.real_daemon import CONFIG, Daemon, free_port, state_of, submit, until
from tests.daemon.users import cli_as, local_user, open_dir

pytestmark = [pytest.mark.slow, pytest.mark.root]

USER = "carbond-ledger-test"
# A user's lock on the WAL write lock byte, held until its stdin closes.
LOCKER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.lockf(fd, fcntl.LOCK_SH, 1, 120)
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def user() -> Iterator[pwd.struct_passwd]:
    """A real unprivileged user, removed afterwards when this test created it."""
    try:
        pwd.getpwnam(USER)
        existed = True
    except KeyError:
        existed = False
    yield local_user(USER)
    if not existed and shutil.which("userdel"):
        subprocess.run(["userdel", USER], check=False, capture_output=True)


def _lock_as(user: pwd.struct_passwd, shm: Path) -> subprocess.Popen[str]:
    """``user`` holding a shared lock on byte 120 of ``shm``, opened while they may read it."""
    locker = subprocess.Popen(
        ["/usr/bin/python3", "-c", LOCKER, str(shm)], user=user.pw_uid, group=user.pw_gid,
        extra_groups=[], cwd="/", stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert locker.stdout is not None
    assert locker.stdout.readline() == "held\n"
    return locker


def _stop(daemon: Daemon) -> None:
    """``systemctl stop``: SIGTERM, then SIGKILL when it has not stopped (systemd's
    TimeoutStopSec=; a daemon whose write waits on the lock gives the wait up and stops,
    tests/daemon/cli/test_run_stop_locked.py)."""
    daemon.proc.terminate()
    try:
        daemon.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        daemon.close()  # SIGKILL
    daemon.close()


def test_a_users_lock_on_the_shm_freezes_ingest_until_the_ledger_is_private(
    user: pwd.struct_passwd,
) -> None:
    if not Path("/usr/bin/python3").exists():
        pytest.skip("no /usr/bin/python3 for the other user")
    top = open_dir()
    state = top / "state"
    config = top / "carbond.toml"
    config.write_text(CONFIG.format(state=state, port=free_port()))
    shm = state / "ledger.db-shm"
    ok = [sys.executable, "-c", "print('ran')"]
    lockers: list[subprocess.Popen[str]] = []
    daemon = Daemon(top, config)
    try:
        daemon.expect("READY=1")
        submit(state, "first", ok)
        until("the first job to succeed", lambda: state_of(state, "first") == "succeeded")
        assert stat.S_IMODE(shm.stat().st_mode) == 0o644  # private = false: readable by all

        # the freeze: while the user holds the lock, no job is ingested
        lockers.append(_lock_as(user, shm))
        submit(state, "frozen", ok)
        time.sleep(12)  # more than the ledger's 10 s busy timeout: ingest gave up at least once
        assert state_of(state, "frozen") is None
        assert "database is locked" in (top / "daemon.log").read_text()
        _stop(daemon)

        # private: the daemon moves the ledger to fresh 0600 files; the same lock, still held
        # on the old -shm, no longer stops it, and the user can open none of its files
        with config.open("a") as toml:
            toml.write("[ledger]\nprivate = true\n")
        daemon = Daemon(top, config)
        daemon.expect("READY=1")
        submit(state, "after", ok)
        until(  # the two start together and may end in either order
            "both jobs to be ingested and succeed",
            lambda: all(state_of(state, j) == "succeeded" for j in ("frozen", "after")),
        )
        assert lockers[0].poll() is None  # still holding its lock on the old file
        for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm"):
            assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
        denied = subprocess.run(
            ["/usr/bin/python3", "-c", f"import os; os.open({str(shm)!r}, os.O_RDONLY)"],
            user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/", capture_output=True,
            check=False,
        )  # fmt: skip
        assert b"PermissionError" in denied.stderr
        log = (top / "daemon.log").read_text()
        assert '"event": "ledger_made_private"' in log

        # the user's ledger commands say in one line why they cannot read it
        result = cli_as(user, top).run(user, "jobs", "--state-dir", str(state))
        assert result.returncode == 1
        assert result.stderr.startswith("carbond: error: ")
        assert result.stderr.count("\n") == 1  # one line, no traceback
        assert "not readable by you (mode 0600, owner root)" in result.stderr
        assert "[ledger] private = true" in result.stderr
    finally:
        for locker in lockers:
            locker.kill()
            locker.communicate()
        daemon.close()
        shutil.rmtree(top)
