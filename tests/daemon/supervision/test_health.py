"""``health.json``'s heartbeat: rewritten at least every ``HEARTBEAT_S`` of the daemon's clock."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon.doctor.checks import run_checks
from daemon.ledger.errors import LedgerError, LockWaitStoppedError
from daemon.supervision.health import HEARTBEAT_S, STALE_S, Health, step_allowance_s
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


def _doctor(state: Path, now: datetime) -> tuple[str, str]:
    [health] = [c for c in run_checks(None, now, state_dir=state) if c.name == "health"]
    return health.status, health.detail


def test_a_step_longer_than_90_s_is_in_progress_until_its_own_allowance(tmp_path: Path) -> None:
    """``health.json`` is written between steps: a plan of many jobs (or a refresh retrying
    a failing API) that ran past 90 s had ``carbond doctor`` call the live daemon stuck while
    it worked. The loop now says when a step begins and how long it may take (its own period's
    worth, or systemd's WatchdogSec); doctor passes until then and fails after."""
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor())
    service.launch_clock = clock
    try:
        began = clock()
        service.before_step("plan", began, step_allowance_s(30.0, 300.0))  # what the loop does
        clock.advance(200.0)  # still planning
        status, detail = _doctor(tmp_path, clock())
        assert status == "pass", detail
        assert f"in its plan step since {began.isoformat()}" in detail
        clock.advance(140.0)  # past WatchdogSec and a heartbeat's margin: stuck
        status, detail = _doctor(tmp_path, clock())
        assert status == "fail" and "in its plan step since" in detail and "stuck" in detail
        service.after_step("plan", None, began)  # it ends at last: written, no step in it
        assert "step" not in json.loads((tmp_path / "health.json").read_text())
        assert _doctor(tmp_path, clock() + timedelta(seconds=5))[0] == "pass"
    finally:
        service.close()


def test_without_a_step_in_progress_90_s_of_silence_is_still_stuck(tmp_path: Path) -> None:
    service = make_service(tmp_path, RecordingExecutor())
    try:
        now = datetime(2026, 12, 6, 12, tzinfo=UTC)
        service.after_step("plan", None, now)
        assert _doctor(tmp_path, now + timedelta(seconds=STALE_S - 1))[0] == "pass"
        status, detail = _doctor(tmp_path, now + timedelta(seconds=STALE_S + 1))
        assert status == "fail" and "stuck" in detail and "step since" not in detail
    finally:
        service.close()


def test_steps_beginning_within_a_heartbeat_of_a_write_do_not_rewrite_the_file(
    tmp_path: Path,
) -> None:
    """Ingest runs every 2 s: saying so at each start would rewrite the file every second."""
    path, health = tmp_path / "health.json", Health()
    t0 = datetime(2026, 12, 6, 12, tzinfo=UTC)
    health.begin_step("ingest", t0, step_allowance_s(2.0))
    health.write(path, t0)
    for n in range(1, 15):  # 28 s of 2-s steps
        health.end_step()
        health.begin_step("ingest", t0 + timedelta(seconds=2 * n), step_allowance_s(2.0))
        health.write(path, t0 + timedelta(seconds=2 * n))
    assert _updated_at(path) == t0
    health.begin_step("plan", t0 + timedelta(seconds=40), step_allowance_s(200.0))
    health.write(path, t0 + timedelta(seconds=40))  # longer than the file vouches for
    assert _updated_at(path) == t0 + timedelta(seconds=40)
    step = json.loads(path.read_text())["step"]
    assert step["name"] == "plan" and datetime.fromisoformat(step["until"]) == t0 + timedelta(
        seconds=40 + 600 + HEARTBEAT_S
    )


def test_a_daemon_stuck_in_a_later_step_is_named_stuck_in_that_step(tmp_path: Path) -> None:
    """A step that began inside the window the file already vouched for left the file naming
    the step written before it: a daemon hung in its reconcile was "in its ingest step since
    ..." to doctor, then "stuck ... in its ingest step". A step of another name is written."""
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor())
    service.launch_clock = clock
    try:
        allowance_s = step_allowance_s(5.0, 300.0)  # what the loop gives each, under systemd
        service.before_step("ingest", clock(), allowance_s)
        service.after_step("ingest", None, clock())
        began = clock.advance(1.0)
        service.before_step("reconcile", began, allowance_s)  # ... and hangs there
        clock.advance(200.0)
        status, detail = _doctor(tmp_path, clock())
        assert status == "pass", detail
        assert f"in its reconcile step since {began.isoformat()}" in detail
        clock.advance(allowance_s)
        status, detail = _doctor(tmp_path, clock())
        assert status == "fail" and "stuck" in detail, detail
        assert f"in its reconcile step since {began.isoformat()}" in detail
    finally:
        service.close()


def test_health_is_never_written_through_a_link_at_its_temporary_name(tmp_path: Path) -> None:
    """The temporary file was opened with O_TRUNC, not O_EXCL: a hard link left at
    ``.health.json.tmp`` had the daemon truncate and overwrite the file it names (the state
    dir's safety check keeps others from planting one; this keeps a leftover from mattering,
    as every other temporary file carbond writes is created)."""
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    state = tmp_path / "state"
    state.mkdir()
    os.link(victim, state / ".health.json.tmp")
    Health().write(state / "health.json", datetime(2026, 1, 1, tzinfo=UTC))
    assert victim.read_text() == "keep me\n"
    assert json.loads((state / "health.json").read_text())["problems"] == {}
    assert not (state / ".health.json.tmp").exists()


def test_a_step_given_up_at_a_stop_is_no_problem_in_health_json(tmp_path: Path) -> None:
    """A step given up at a clean stop (its ledger write stopped waiting on another process's
    lock: logged ``step_abandoned``) left ``step:ingest: LockWaitStoppedError: ...`` in
    ``health.json`` as a failure. It is none, nor the end of one: a failure the step had
    before (the lock held for minutes) stays as it was, and none is added."""
    service = make_service(tmp_path, RecordingExecutor())
    path = tmp_path / "health.json"
    try:
        now = datetime(2026, 12, 6, 12, tzinfo=UTC)
        given_up = LockWaitStoppedError(f"{tmp_path / 'ledger.db'}: gave up waiting ...")
        service.after_step("ingest", given_up, now)
        assert json.loads(path.read_text())["problems"] == {}
        locked = LedgerError("database is locked")
        service.after_step("plan", locked, now)
        service.after_step("plan", given_up, now + timedelta(seconds=30))
        problems = json.loads(path.read_text())["problems"]
        assert list(problems) == ["step:plan"]
        assert problems["step:plan"] == {"message": "LedgerError: database is locked",
                                         "since": now.isoformat()}  # fmt: skip
    finally:
        service.close()
