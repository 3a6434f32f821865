"""A job's stdout/stderr files are its user's alone, whatever group they share."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from daemon.executors.jobfiles import open_log


def test_a_jobs_log_files_are_readable_by_its_user_only(tmp_path: Path) -> None:
    """``<job>.out``/``.err`` were created 0640 and given to the job's uid and *primary
    group*. Where users share a primary group (``users``, a project group: common on
    clusters), every member could read every other member's job output; logs/ is 0751 and
    the job ids are in the world-readable ledger. The guide says they are readable by their
    user only: they are now created 0600, whatever the umask."""
    old = os.umask(0)
    try:
        fd = open_log(tmp_path / "j1.out", os.geteuid(), os.getegid())
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600
    finally:
        os.close(fd)
