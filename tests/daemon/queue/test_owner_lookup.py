"""A queue file whose owner's passwd lookup fails (an LDAP or sssd outage) is left unread until
the lookup succeeds: its jobs never take the file's own group, which its owner may set."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog

from daemon.ledger import Ledger
from daemon.queue import SPOOL_DIR
from daemon.queue.ingest import Queue
from tests.daemon.helpers import append, job_line
from tests.daemon.queue.conftest import rejections
from tests.daemon.users import CREATED_UIDS_FROM, uid_without_user

NOW = datetime(2024, 6, 1, tzinfo=UTC)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown files to others")


@pytest.fixture
def missing_uid() -> Iterator[int]:
    """A uid with no passwd entry now; the user made for it later is removed afterwards."""
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("useradd/userdel are not installed")
    uid = uid_without_user(CREATED_UIDS_FROM)
    yield uid
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return
    subprocess.run(["userdel", name], check=False, capture_output=True)


def test_a_file_of_an_owner_without_passwd_entry_waits_unread_and_loses_nothing(
    queue: Queue, ledger: Ledger, missing_uid: int
) -> None:
    """When the owner's passwd lookup failed, the job's group was the spool file's own group,
    which its owner sets (``chgrp`` to any group of theirs, or a setgid directory's): here the
    daemon's group 0. Now the file is not read at all (no job, no rejection, no offset), told
    once in the log, and read at the first pass where the lookup succeeds, its jobs in the
    owner's primary group from passwd."""
    spool = queue.state_dir / SPOOL_DIR / f"{missing_uid}.jsonl"
    append(spool, job_line(id="grouped"))
    os.chown(spool, missing_uid, 0)
    spool.chmod(0o644)
    with structlog.testing.capture_logs() as logs:
        for _ in range(2):
            result = queue.ingest(NOW)
            assert (result.accepted, result.rejected) == ((), 0)
    assert ledger.jobs() == []
    assert rejections(queue.state_dir) == []
    assert f"queue.d/{missing_uid}.jsonl" not in ledger.queue_files()
    told = [e for e in logs if e["event"] == "queue_file_owner_unknown"]
    assert [(e["path"], e["uid"]) for e in told] == [(f"queue.d/{missing_uid}.jsonl", missing_uid)]
    assert "no passwd entry" in told[0]["reason"]

    subprocess.run(["useradd", "--system", "--no-create-home", "--uid", str(missing_uid),
                    f"carbond-test-{missing_uid}"], check=True)  # fmt: skip
    user = pwd.getpwuid(missing_uid)
    assert user.pw_gid != 0
    assert queue.ingest(NOW).accepted == ("grouped",)
    job = ledger.job("grouped")
    assert (job.uid, job.gid) == (missing_uid, user.pw_gid)
