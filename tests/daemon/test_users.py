"""The ``root`` tests' user helper (tests/daemon/users.py) under ``make test``'s parallel
workers: two tests that need the same local user at once both get it."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.users import CREATED_UIDS_FROM, local_user, uid_without_user

pytestmark = pytest.mark.root


@pytest.fixture
def new_name() -> Iterator[str]:
    """A user name nobody has yet; the user is removed afterwards."""
    if os.geteuid() != 0 or shutil.which("userdel") is None:
        pytest.skip("needs root with useradd/userdel")
    name = f"carbond-race-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["userdel", name], check=False, capture_output=True)


def test_two_tests_creating_the_same_user_at_once_both_get_it(new_name: str) -> None:
    """Both found it missing and ran ``useradd``, and until 2026-12-07 both added it: two
    passwd lines under one name with two uids (useradd checks the name before it locks
    /etc/passwd), so one test's user was not the one ``getpwnam`` gives."""
    start = threading.Barrier(2)
    got: list[pwd.struct_passwd | BaseException] = []

    def make() -> None:
        start.wait()
        try:
            got.append(local_user(new_name))
        except BaseException as exc:  # pytest's skip too: any of it fails the test below
            got.append(exc)

    threads = [threading.Thread(target=make) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [g.pw_name if isinstance(g, pwd.struct_passwd) else repr(g) for g in got] == [
        new_name,
        new_name,
    ]
    assert got[0] == got[1] == pwd.getpwnam(new_name)
    lines = Path("/etc/passwd").read_text().splitlines()
    assert [line for line in lines if line.startswith(f"{new_name}:")] == [
        f"{new_name}:x:{got[0].pw_uid}:{got[0].pw_gid}:{got[0].pw_gecos}:{got[0].pw_dir}:"
        f"{got[0].pw_shell}"
    ]  # one user, made once (useradd twice at once adds it twice, with two uids)


def test_a_user_made_for_a_made_up_uid_takes_no_uid_another_test_keeps_unused() -> None:
    """test_owner_lookup.py creates a user for a uid that had none, while a test beside it
    (test_slurm_owner.py, test_owner_on_slurm.py) may be using "the first uid with no user" as
    one that has none: they take their uids from apart (until 2026-12-07 both from 54321)."""
    if os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("needs root with useradd/userdel")
    unused = uid_without_user()
    made = uid_without_user(CREATED_UIDS_FROM)
    name = f"carbond-test-{made}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--uid", str(made), name],
                   check=True, capture_output=True)  # fmt: skip
    try:
        assert uid_without_user() == unused
        with pytest.raises(KeyError):
            pwd.getpwuid(unused)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)
