"""A ledger and a queue in the test's state dir, and the rejections it wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.ledger import Ledger
from daemon.queue.ingest import Queue


@pytest.fixture
def queue(tmp_path: Path, ledger: Ledger) -> Queue:
    q = Queue(tmp_path, ledger, compact_min_bytes=10**9)
    q.prepare()
    return q


def rejections(state_dir: Path) -> list[dict[str, object]]:
    """The lines of ``state_dir``'s rejected.jsonl (none when it does not exist), split on
    ``\n`` alone: a quoted line may hold U+2028, U+2029 or U+0085 unescaped, which
    ``str.splitlines`` also splits on."""
    path = state_dir / "rejected.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n") if line]
