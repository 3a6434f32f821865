"""What compaction's replacement of a user's queue file keeps of the old file's mode."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.ledger import Ledger
from daemon.queue import RETIRED_DIR, SPOOL_DIR, compaction
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


@pytest.mark.parametrize("swapped_in", ["symlink", "fifo", "directory"])
def test_what_an_owner_swaps_in_before_the_rename_is_cleaned_from_queue_retired(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, swapped_in: str
) -> None:
    """A spool file's owner can replace their file (theirs to unlink in the sticky queue.d)
    between compaction's check and its rename, which then moves what they put there into
    queue.retired/. A symlink (or a FIFO, a directory) there was never read, so it was never
    deleted either: it stayed for ever and was tried again at every pass. It is removed now,
    without following it: what the link points to is untouched."""
    queue = Queue(tmp_path, ledger, compact_min_bytes=1, retired_grace_s=60)
    queue.prepare()
    spool = tmp_path / SPOOL_DIR / f"{os.geteuid()}.jsonl"
    append(spool, job_line(id="a"))
    precious = tmp_path / "precious"
    precious.write_text("keep me\n")
    (tmp_path / "kept").mkdir()

    def swap(point: str) -> None:
        if point != "compact_begun":
            return
        spool.unlink()
        if swapped_in == "symlink":
            spool.symlink_to(precious)
        elif swapped_in == "fifo":
            os.mkfifo(spool)
        else:
            spool.mkdir()
            (spool / "link").symlink_to(tmp_path / "kept")

    monkeypatch.setattr(compaction.killpoints, "reached", swap)
    assert queue.ingest(NOW).accepted == ("a",)
    monkeypatch.undo()
    retired = tmp_path / RETIRED_DIR
    assert len(list(retired.iterdir())) == 1  # the swapped-in thing, renamed there

    queue.ingest(NOW + timedelta(seconds=61))

    assert list(retired.iterdir()) == []
    assert not [rel for rel, r in ledger.queue_files().items() if r.retired_at is not None]
    assert precious.read_text() == "keep me\n"
    assert (tmp_path / "kept").is_dir()
