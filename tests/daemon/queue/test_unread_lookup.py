"""Looking for a job line the daemon has not read (``carbond cancel``/``status``), in files
another user may swap under the caller: ``queue.d`` is writable by everyone."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.queue import UnreadLines, has_job_line, unread_lines
from daemon.queue.ingest import Queue
from daemon.queue.raw_line import line_object
from daemon.queue.unread_lines import rejected_job_line
from tests.daemon.queue.conftest import rejections

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def _job(job_id: str) -> str:
    return json.dumps({"id": job_id, "model": "llama-1b", "command": ["true"]}) + "\n"


def test_a_fifo_swapped_in_for_a_queue_file_does_not_hang_the_lookup(tmp_path: Path) -> None:
    """``carbond cancel`` (root's looks through every user's spool file) and ``status`` check
    a spool file with ``lstat``, then opened it with a plain blocking ``open``: a FIFO its
    owner put in its place meanwhile hung the command until someone wrote to the FIFO. Now
    the file is opened without blocking and not followed, and anything but a regular file
    holds no job (the daemon never reads its lines either)."""
    fifo = tmp_path / "1001.jsonl"
    os.mkfifo(fifo)
    answer: list[bool] = []
    lookup = threading.Thread(
        target=lambda: answer.append(has_job_line(fifo, "j1", NOW)), daemon=True
    )
    lookup.start()
    lookup.join(timeout=5)
    hung = lookup.is_alive()
    if hung:  # release the blocked reader before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        lookup.join(timeout=5)
    assert not hung
    assert answer == [False]


def test_a_symlink_swapped_in_for_a_queue_file_is_not_followed(tmp_path: Path) -> None:
    """A symlink in a spool file's place led root's lookup into whatever file it named
    (whether it holds the id was the answer); the daemon never reads a symlink's lines."""
    elsewhere = tmp_path / "private.jsonl"
    elsewhere.write_text(_job("j1"))
    link = tmp_path / "1001.jsonl"
    link.symlink_to(elsewhere)

    assert has_job_line(elsewhere, "j1", NOW)
    assert not has_job_line(link, "j1", NOW)


def test_a_cancel_counts_only_after_the_jobs_own_line(tmp_path: Path) -> None:
    """The daemon reads in order: a cancel line before the job's line cancels nothing."""
    queue = tmp_path / "queue.jsonl"
    queue.write_text('{"cancel": "j1"}\n' + _job("j1") + '{"cancel": "j2"}\n')
    assert unread_lines(queue, "j1", NOW) == UnreadLines(job=True, cancel=False)
    with queue.open("a") as handle:
        handle.write('{"cancel":"j1"}\n')
    assert unread_lines(queue, "j1", NOW) == UnreadLines(job=True, cancel=True)
    assert unread_lines(queue, "j2", NOW) == UnreadLines(job=False, cancel=False)


def test_an_unfinished_last_line_is_pending_and_an_unfinished_cancel_is_none_yet(
    tmp_path: Path,
) -> None:
    """The daemon reads a line once it ends: a job line without its newline yet was counted
    as any other (no sign it waits), and a cancel line without one as a cancel."""
    queue = tmp_path / "queue.jsonl"
    queue.write_text(_job("j1") + _job("j2").rstrip("\n"))
    assert unread_lines(queue, "j2", NOW) == UnreadLines(job=True, cancel=False, ended=False)
    assert unread_lines(queue, "j1", NOW) == UnreadLines(job=True, cancel=False)
    queue.write_text(_job("j1") + '{"cancel": "j1"}')
    assert unread_lines(queue, "j1", NOW) == UnreadLines(job=True, cancel=False)


def test_a_job_line_that_spells_its_id_with_an_escape_is_its_line(tmp_path: Path) -> None:
    """``"\\u0061"`` is the JSON of ``a``: the daemon takes that line as job ``a``'s, but the
    lookup skipped every line not holding ``"a"`` as typed, so it found no job, and took a
    cancel spelled so for none."""
    queue = tmp_path / "queue.jsonl"
    queue.write_text(_job("a").replace('"a"', '"\\u0061"') + '{"cancel": "\\u0061"}\n')
    assert unread_lines(queue, "a", NOW) == UnreadLines(job=True, cancel=True)


@pytest.mark.parametrize(
    "encoded",
    [
        # the BOM json.loads strips from bytes; the daemon reads it as a character: not JSON
        lambda line: b"\xef\xbb\xbf" + line.encode("utf-8"),
        # json.loads guesses UTF-16 from bytes; the daemon: UTF-8 with NULs, not JSON
        lambda line: line.replace("true", "a\\\\b").encode("utf-16-le"),
    ],
    ids=["utf-8-bom", "utf-16"],
)
def test_a_line_the_daemon_cannot_decode_is_credited_with_no_id(
    queue: Queue, encoded: Callable[[str], bytes]
) -> None:
    """``carbond status``/``cancel`` of a job whose unread line is UTF-16 (or UTF-8 with a
    BOM) said the line "will be rejected", and the daemon's rejected.jsonl record named the
    job's id: both read the line with ``json.loads`` on its bytes, which guesses UTF-16/32
    and strips a BOM, though the daemon decodes a line as UTF-8 only and reads no id from
    it. Both now read it as the daemon does: no id; a UTF-8 line is still credited."""
    line = _job("j1").rstrip("\n")
    queue.path.write_bytes(encoded(line) + b"\n" + _job("j2").replace('"llama-1b"', "7").encode())

    assert line_object(encoded(line)) is None  # no id: not even past the quick filter
    assert rejected_job_line(queue.path, "j1", NOW) is None
    assert rejected_job_line(queue.path, "j2", NOW) is not None  # read as UTF-8: still its id
    assert queue.ingest(NOW).rejected == 2
    assert [r["job_id"] for r in rejections(queue.state_dir)] == [None, "j2"]
