"""Compaction of a queue file with more than one hard link (whose lines are all rejected: its
owner cannot vouch for them) puts a new, single-link file in its place: the name heals, and
its lines are read as its owner's again. The other name keeps the old file: lines written
through it are read (and rejected) from ``queue.retired/`` until ``retired_grace_s`` after
the compaction, then never read at all."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.ledger import Ledger
from daemon.queue import QUEUE_NAME, RETIRED_DIR, SPOOL_DIR
from daemon.queue.ingest import Queue
from tests.daemon.helpers import append, job_line
from tests.daemon.queue.conftest import rejections

NOW = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize("rel", [QUEUE_NAME, f"{SPOOL_DIR}/{os.geteuid()}.jsonl"])
def test_compaction_replaces_a_hard_linked_queue_file_with_a_single_link_one(
    tmp_path: Path, ledger: Ledger, rel: str
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    queue = Queue(state, ledger, compact_min_bytes=1, retired_grace_s=60)
    queue.prepare()
    path = state / rel
    append(path, job_line(id="before"))
    other = tmp_path / "other-name"
    os.link(path, other)

    result = queue.ingest(NOW)  # rejected, so fully read, so compacted

    assert (result.accepted, result.rejected) == ((), 1)
    assert "cannot vouch" in str(rejections(state)[0]["reason"])
    [retired] = (state / RETIRED_DIR).iterdir()
    assert os.path.samefile(retired, other)
    assert path.stat().st_nlink == 1  # the new file: healed
    append(path, job_line(id="after"))
    append(other, job_line(id="through-the-other-name"))

    later = queue.ingest(NOW + timedelta(seconds=1))

    assert later.accepted == ("after",)
    assert later.rejected == 1  # read from queue.retired/, still linked twice
    assert queue.ingest(NOW + timedelta(seconds=61)).rejected == 0  # the retired one deleted
    assert not list((state / RETIRED_DIR).iterdir())
    append(other, job_line(id="never-read"))
    assert other.stat().st_nlink == 1
    end = queue.ingest(NOW + timedelta(seconds=62))
    assert (end.accepted, end.rejected) == ((), 0)
    assert len(rejections(state)) == 2
