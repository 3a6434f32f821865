"""A queue file other users can write is told once in the log (``queue_file_writable``, with
its path, owner uid and mode), not only line by line (``queue_line_rejected``): the operator
sees the cause, and the fix (move it away, submit again), without reading every rejected
line. Until 2026-12-07 the rejected lines were the only sign."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import structlog

from daemon.queue import QUEUE_NAME, SPOOL_DIR
from daemon.queue.ingest import Queue
from tests.daemon.helpers import append, job_line

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def _told(logs: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    return [(e["path"], e["uid"], e["mode"]) for e in logs if e["event"] == "queue_file_writable"]


def test_a_writable_spool_file_is_told_once_while_each_line_is_rejected(queue: Queue) -> None:
    rel = f"{SPOOL_DIR}/{os.getuid()}.jsonl"
    spool = queue.state_dir / rel
    append(spool, job_line(id="a") + job_line(id="b"))
    spool.chmod(0o666)

    with structlog.testing.capture_logs() as logs:
        assert queue.ingest(NOW).rejected == 2
        assert queue.ingest(NOW).rejected == 0
        append(spool, job_line(id="c"))
        assert queue.ingest(NOW).rejected == 1

    assert [e["line_no"] for e in logs if e["event"] == "queue_line_rejected"] == [1, 2, 3]
    assert _told(logs) == [(rel, os.getuid(), "0666")]
    [event] = [e for e in logs if e["event"] == "queue_file_writable"]
    assert event["log_level"] == "warning"


def test_it_is_told_again_once_writable_again(queue: Queue) -> None:
    """Once it is not writable (its owner recreated it), a file made writable again is a new
    problem, told again; queue.jsonl is judged as the spool files are."""
    os.chmod(queue.path, 0o620)
    with structlog.testing.capture_logs() as logs:
        queue.ingest(NOW)
        os.chmod(queue.path, 0o600)
        queue.ingest(NOW)
        queue.ingest(NOW)
        os.chmod(queue.path, 0o602)
        queue.ingest(NOW)

    assert _told(logs) == [(QUEUE_NAME, os.getuid(), "0620"), (QUEUE_NAME, os.getuid(), "0602")]


def test_a_private_file_is_not_told(queue: Queue) -> None:
    append(queue.path, job_line(id="fine"))
    with structlog.testing.capture_logs() as logs:
        assert queue.ingest(NOW).accepted == ("fine",)
    assert _told(logs) == []


def test_a_file_gone_and_made_again_is_told_again(queue: Queue) -> None:
    """What was told of a file is forgotten once it is gone: a new writable file of that
    name (its inode may be the old one's) is told."""
    rel = f"{SPOOL_DIR}/{os.getuid()}.jsonl"
    spool = queue.state_dir / rel
    with structlog.testing.capture_logs() as logs:
        for _ in range(2):
            append(spool, job_line())
            spool.chmod(0o666)
            queue.ingest(NOW)
            spool.unlink()
            queue.ingest(NOW)

    assert _told(logs) == [(rel, os.getuid(), "0666")] * 2
