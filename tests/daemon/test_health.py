"""``health.json``'s heartbeat: rewritten at least every ``HEARTBEAT_S`` of the daemon's clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon.health import HEARTBEAT_S, Health


def _updated_at(path: Path) -> datetime:
    return datetime.fromisoformat(json.loads(path.read_text())["updated_at"])


def test_a_clock_stepped_back_does_not_stretch_the_heartbeat(tmp_path: Path) -> None:
    """A step back shorter than a reported clock step (20 s) made the file look fresh for
    the 20 s plus a whole heartbeat: doctor saw a write up to ~59 s old from a live daemon."""
    path, health = tmp_path / "health.json", Health()
    t0 = datetime(2026, 12, 6, 12, tzinfo=UTC)
    health.write(path, t0)
    health.write(path, t0 + timedelta(seconds=HEARTBEAT_S / 2))  # fresh: not rewritten
    assert _updated_at(path) == t0
    back = t0 - timedelta(seconds=20)
    health.write(path, back)
    assert _updated_at(path) == back
