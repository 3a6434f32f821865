"""Kill points: ``CARBOND_KILL_AT`` parsing, a process that really dies at its point, and the
kill harness's short profile against the real ``carbond run`` (the long profile, 500 kills, is
``make kill-harness``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon import killpoints
from daemon.ledger import Ledger, LedgerError, UnknownJobError
from tests.daemon.killharness import FINAL, REPO, STARTUP_S, Session

REACH_TWICE = (
    "from daemon import killpoints\n"
    "killpoints.reached('ingest_line'); print('first', flush=True)\n"
    "killpoints.reached('ingest_done'); print('other point', flush=True)\n"
    "killpoints.reached('ingest_line'); print('second', flush=True)\n"
)


@pytest.mark.parametrize(
    ("value", "target"),
    [
        (None, None),
        ("", None),
        ("ingest_line", ("ingest_line", 1)),
        ("job_exit:3", ("job_exit", 3)),
    ],
)
def test_the_variable_names_a_point_and_a_count(
    value: str | None, target: tuple[str, int] | None
) -> None:
    assert killpoints._target(value) == target


@pytest.mark.parametrize("value", ["nowhere", "job_exit:0", "job_exit:x"])
def test_a_bad_variable_is_refused_at_start_up(value: str) -> None:
    with pytest.raises(ValueError, match=r"^CARBOND_KILL_AT="):
        killpoints._target(value)


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        (None, ["first", "other point", "second"]),
        ("ingest_line:1", []),
        ("ingest_line:2", ["first", "other point"]),
    ],
)
def test_the_process_dies_by_sigkill_at_the_nth_time(value: str | None, printed: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != killpoints.ENV}
    if value:
        env[killpoints.ENV] = value
    done = subprocess.run(
        [sys.executable, "-c", REACH_TWICE],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.stdout.split("\n")[:-1] == printed
    assert done.returncode == (-signal.SIGKILL if value else 0)


def test_every_point_is_placed_in_the_daemon() -> None:
    sources = "".join(p.read_text() for p in (REPO / "daemon").rglob("*.py"))
    for point in killpoints.POINTS:
        assert sources.count(f'killpoints.reached("{point}")') == 1, point


@pytest.mark.slow
def test_short_profile_kills_at_named_points_and_at_random(tmp_path: Path) -> None:
    plan: list[str | None] = ["migration:1", "dispatch_handle:1", "job_exit:1"]
    tally = Session(tmp_path, seed=13).run_plan(plan)
    assert tally.kills == len(plan)
    assert tally.point_kills["migration"] == 1
    assert sum(tally.point_kills.values()) + tally.missed + tally.outside_kills == len(plan)
    assert tally.checks == len(plan) + 1


def _state_of(session: Session, job_id: str) -> str | None:
    try:
        with Ledger.open_readonly(session.state / "ledger.db") as ledger:
            return ledger.job(job_id).state
    except (LedgerError, UnknownJobError):  # not there yet
        return None


def _wait_for(session: Session, job_id: str, states: set[str]) -> str:
    end = time.monotonic() + STARTUP_S
    while (state := _state_of(session, job_id)) not in states:
        assert time.monotonic() < end, f"{job_id} is {state}, not {sorted(states)}"
        time.sleep(0.1)
    assert state is not None
    return state


def test_a_cancel_the_killed_daemon_had_sent_is_sent_again_after_a_restart(
    tmp_path: Path,
) -> None:
    session = Session(tmp_path, seed=0)
    # ignores SIGTERM (once it says so in `ready`): only the SIGKILL after the grace period
    # (2 s) ends it
    ready = tmp_path / "ready"
    line = {"id": "c1", "model": "llama-1b", "requests": 1,
            "command": ["sh", "-c", f"trap '' TERM; touch {ready}; sleep 600"]}  # fmt: skip
    queue = session.state / "queue.jsonl"
    queue.write_text(json.dumps(line) + "\n")
    daemon = session._start("cancel_sent")
    try:
        _wait_for(session, "c1", {"running"})
        end = time.monotonic() + STARTUP_S
        while not ready.exists():
            assert time.monotonic() < end, "the job did not start"
            time.sleep(0.05)
        with queue.open("a") as out:
            out.write(json.dumps({"cancel": "c1"}) + "\n")
        assert daemon.wait(timeout=STARTUP_S) == -signal.SIGKILL  # its SIGTERM sent, then died
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    daemon = session._start(None)
    try:
        assert _wait_for(session, "c1", FINAL) == "cancelled"
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    with Ledger.open_readonly(session.state / "ledger.db") as ledger:
        run = ledger.run("c1")
        assert run is not None and run.signal == signal.SIGKILL  # after the grace period
        assert ledger.outcome("c1") is not None


def test_a_job_that_exits_0_on_the_cancel_a_killed_daemon_sent_is_cancelled_after_a_restart(
    tmp_path: Path,
) -> None:
    """The daemon sent the owner's cancel and died; the job trapped SIGTERM and exited 0.
    Only the dead daemon had known the cancel was sent: the restarted one recorded the job
    ``succeeded``, as if it had run to its end. The send is recorded in the ledger now."""
    session = Session(tmp_path, seed=0)
    ready = tmp_path / "ready"
    line = {"id": "c0", "model": "llama-1b", "requests": 1,
            "command": ["sh", "-c", f"trap 'exit 0' TERM; touch {ready}; sleep 600"]}  # fmt: skip
    queue = session.state / "queue.jsonl"
    queue.write_text(json.dumps(line) + "\n")
    daemon = session._start("cancel_sent")
    try:
        _wait_for(session, "c0", {"running"})
        end = time.monotonic() + STARTUP_S
        while not ready.exists():
            assert time.monotonic() < end, "the job did not start"
            time.sleep(0.05)
        with queue.open("a") as out:
            out.write(json.dumps({"cancel": "c0"}) + "\n")
        assert daemon.wait(timeout=STARTUP_S) == -signal.SIGKILL  # its SIGTERM sent, then died
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    daemon = session._start(None)
    try:
        assert _wait_for(session, "c0", FINAL) == "cancelled"
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    with Ledger.open_readonly(session.state / "ledger.db") as ledger:
        run = ledger.run("c0")
        assert run is not None and run.exit_code == 0
        reason = ledger.transitions("c0")[-1].reason
        assert reason == "cancelled by its owner while running (it exited 0)"
