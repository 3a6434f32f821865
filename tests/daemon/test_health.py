"""``health.json``'s heartbeat: rewritten at least every ``HEARTBEAT_S`` of the daemon's clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon.doctor import run_checks
from daemon.health import HEARTBEAT_S, Health
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import make_service


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


def test_a_slow_step_stamps_health_json_when_it_writes_it(tmp_path: Path) -> None:
    """``updated_at`` was the step's start: a step that took 100 s wrote a file already 100 s
    old, and ``carbond doctor`` right after called the live daemon stuck (over 90 s). Live,
    the file carries the wall clock when it is written; doctor passes."""
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor())
    service.launch_clock = clock  # as ``carbond run`` wires it: the wall clock
    try:
        started = clock()
        clock.advance(100.0)  # the step ran for 100 s
        service.after_step("plan", None, started)
        assert _updated_at(tmp_path / "health.json") == clock()
        clock.advance(5.0)
        [health] = [c for c in run_checks(None, clock(), state_dir=tmp_path)
                    if c.name == "health"]  # fmt: skip
        assert health.status == "pass", health.detail
    finally:
        service.close()


def test_without_a_wall_clock_health_json_carries_the_step_time(tmp_path: Path) -> None:
    """Replay and the demo (no wall clock: time moves between rounds) stamp the round's."""
    service = make_service(tmp_path, RecordingExecutor())
    try:
        now = datetime(2026, 12, 6, 12, tzinfo=UTC)
        service.after_step("plan", None, now)
        assert _updated_at(tmp_path / "health.json") == now
    finally:
        service.close()
