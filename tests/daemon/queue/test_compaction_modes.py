"""What compaction's replacement of a user's queue file keeps of the old file's mode."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.ledger import Ledger
from daemon.queue import RETIRED_DIR, SPOOL_DIR
from daemon.queue.ingest import Queue
from tests.daemon.helpers import append, job_line

NOW = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize("special", [stat.S_ISUID, stat.S_ISGID | stat.S_IXGRP])
def test_compaction_never_sets_set_id_bits_on_the_replacement(
    tmp_path: Path, ledger: Ledger, special: int
) -> None:
    """Compaction made the replacement with the old file's whole mode, set-user/group-ID
    bits included, which a spool file's owner may set on their own file. Under the unit
    (``RestrictSUIDSGID=yes``) the daemon may not set them: the fchmod failed with EPERM,
    so that one user's file made every ingest pass fail (``step_failed`` with a traceback
    every few seconds, the health file showing it) and left its compaction undone, for as
    long as the bit stayed. Only the permission bits are carried over now."""
    queue = Queue(tmp_path, ledger, compact_min_bytes=1, retired_grace_s=60)
    queue.prepare()
    spool = tmp_path / SPOOL_DIR / f"{os.geteuid()}.jsonl"
    append(spool, job_line(id="a"))
    spool.chmod(0o644 | special)
    assert stat.S_IMODE(spool.stat().st_mode) & special == special  # the premise

    assert queue.ingest(NOW).accepted == ("a",)

    assert len(list((tmp_path / RETIRED_DIR).iterdir())) == 1  # compacted
    assert stat.S_IMODE(spool.stat().st_mode) == 0o644 | (special & stat.S_IXGRP)
