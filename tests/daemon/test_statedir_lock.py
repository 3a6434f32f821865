"""``daemon.lock`` against other users: ``flock`` needs only a descriptor open for reading, so
while the lock file was 0644 any user could hold it (``flock daemon.lock sleep inf``) and keep
every later ``carbond run`` from starting ("another carbond daemon (pid N) runs")."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.statedir import (
    LEDGER_NAME,
    LOCK_NAME,
    StateDirLockedError,
    holds_open,
    lock_state_dir,
)
from daemon.supervision.health import HEALTH_NAME, Health
from tests.daemon.users import local_user, open_dir

pytestmark = pytest.mark.root

USER = "carbond-test-user"


@pytest.fixture
def state() -> Iterator[Path]:
    """A state dir another user can reach (pytest's tmp dirs are 0700)."""
    top = open_dir()
    path = top / "state"
    path.mkdir(mode=0o755)
    yield path
    shutil.rmtree(top)


def _held(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _flock_as(user_name: str, path: Path) -> subprocess.Popen[bytes]:
    """``flock PATH sleep 60`` as ``user_name``, once it holds the lock (or has exited)."""
    if shutil.which("flock") is None:
        pytest.skip("flock(1) is not installed")
    user = local_user(user_name)
    holder = subprocess.Popen(
        ["flock", "-x", "-n", str(path), "sleep", "60"], user=user.pw_uid, group=user.pw_gid,
        extra_groups=[], cwd="/", stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while holder.poll() is None and not _held(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return holder


def test_a_lock_another_user_holds_does_not_keep_the_daemon_from_starting(state: Path) -> None:
    """The 0644 lock file an older carbond left, held by another user: the daemon replaces it
    with a fresh 0600 one, which it holds; a second daemon is still refused."""
    lock = state / LOCK_NAME
    lock.write_text("4242\n")
    lock.chmod(0o644)
    holder = _flock_as(USER, lock)
    try:
        assert holder.poll() is None, "the other user could not take the lock"
        fd = lock_state_dir(state)
        try:
            assert os.fstat(fd).st_ino == os.stat(lock).st_ino  # the file now at daemon.lock
            assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600
            assert lock.read_text() == f"{os.getpid()}\n"
            with pytest.raises(StateDirLockedError, match=f"pid {os.getpid()}"):
                lock_state_dir(state)  # held by this uid: a daemon, still one per state dir
        finally:
            os.close(fd)
    finally:
        holder.kill()
        holder.wait()
    assert [p.name for p in state.iterdir()] == [LOCK_NAME]  # no temporary file left


def test_the_lock_file_is_the_daemons_alone(state: Path) -> None:
    """Created 0600 (and an older 0644 one made so): another user cannot even open it."""
    os.close(lock_state_dir(state))
    assert stat.S_IMODE(os.stat(state / LOCK_NAME).st_mode) == 0o600
    holder = _flock_as(USER, state / LOCK_NAME)
    assert holder.wait(timeout=10) != 0  # flock(1): cannot open the file
    (state / LOCK_NAME).chmod(0o644)
    os.close(lock_state_dir(state))
    assert stat.S_IMODE(os.stat(state / LOCK_NAME).st_mode) == 0o600


def test_a_users_reader_given_the_old_daemons_pid_does_not_keep_the_daemon_from_starting(
    state: Path,
) -> None:
    """After the daemon stopped, another user's process got its pid (named in health.json)
    and holds the ledger open, which every user may read unless ``[ledger] private``: it was
    taken for an older daemon without the lock ("another carbond daemon (pid N, a version
    that takes no daemon.lock) runs"), and no daemon started until an admin killed it."""
    user = local_user(USER)
    ledger = state / LEDGER_NAME
    ledger.write_bytes(b"")
    ledger.chmod(0o644)
    with ledger.open("rb") as held:  # the reader's own fd once it runs
        reader = subprocess.Popen(
            ["sleep", "60"], stdin=held, user=user.pw_uid, group=user.pw_gid,
            extra_groups=[], cwd="/",
        )  # fmt: skip
    try:
        Health().write(state / HEALTH_NAME, datetime.now(UTC))
        record = json.loads((state / HEALTH_NAME).read_text())
        (state / HEALTH_NAME).write_text(json.dumps({**record, "pid": reader.pid}))
        assert holds_open(reader.pid, ledger)  # the user's process, with the ledger open

        os.close(lock_state_dir(state))
    finally:
        reader.kill()
        reader.wait()
