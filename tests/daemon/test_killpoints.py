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
from daemon.executors.jobfiles import process_start_ticks
from daemon.executors.local import LocalExecutor
from daemon.ledger import Ledger, LedgerError, UnknownJobError
from daemon.testing import FakeClock
from tests.daemon.killharness import FINAL, REPO, STARTUP_S, Session
from tests.daemon.measurement.measured_service import build

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


def _cancelled_across_a_restart(tmp_path: Path, job_id: str, trap: str) -> Session:
    """Job ``job_id`` (a shell that runs ``trap``, says so in a file, then sleeps) running
    under a daemon killed at ``cancel_sent``, once it sent the owner's cancel; a restarted
    daemon ends it ``cancelled``. The session, both daemons gone."""
    session = Session(tmp_path, seed=0)
    ready = tmp_path / "ready"
    line = {"id": job_id, "model": "llama-1b", "requests": 1,
            "command": ["sh", "-c", f"{trap}; touch {ready}; sleep 600"]}  # fmt: skip
    queue = session.state / "queue.jsonl"
    queue.write_text(json.dumps(line) + "\n")
    daemon = session._start("cancel_sent")
    try:
        _wait_for(session, job_id, {"running"})
        end = time.monotonic() + STARTUP_S
        while not ready.exists():
            assert time.monotonic() < end, "the job did not start"
            time.sleep(0.05)
        with queue.open("a") as out:
            out.write(json.dumps({"cancel": job_id}) + "\n")
        assert daemon.wait(timeout=STARTUP_S) == -signal.SIGKILL  # its SIGTERM sent, then died
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    daemon = session._start(None)
    try:
        assert _wait_for(session, job_id, FINAL) == "cancelled"
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    return session


def test_a_cancel_the_killed_daemon_had_sent_is_sent_again_after_a_restart(
    tmp_path: Path,
) -> None:
    # ignores SIGTERM: only the SIGKILL after the grace period (2 s) ends it
    session = _cancelled_across_a_restart(tmp_path, "c1", "trap '' TERM")
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
    session = _cancelled_across_a_restart(tmp_path, "c0", "trap 'exit 0' TERM")
    with Ledger.open_readonly(session.state / "ledger.db") as ledger:
        run = ledger.run("c0")
        assert run is not None and run.exit_code == 0
        reason = ledger.transitions("c0")[-1].reason
        assert reason == "cancelled by its owner while running (it exited 0)"


# A daemon measuring two simulated A100s (tests/daemon/measurement/measured_service.py) runs a job
# that ignores SIGTERM, loses its GPU and is killed where check_gpus has recorded the run's stop
# and sent SIGTERM, before the job's end is recorded.
LOSE_A_GPU = """
import json, sys, time
from pathlib import Path
from daemon.executors.local import LocalExecutor
from daemon.testing import FakeClock
from tests.daemon.helpers import append, job_line
from tests.daemon.measurement.measured_service import build, lose_gpu
state, ready = Path(sys.argv[1]), Path(sys.argv[2])
clock = FakeClock()
executor = LocalExecutor(grace_s=10.0, log_dir=state / "logs", monotonic=lambda: 1000.0)
service, backend, monitor = build(state, clock, executor)
stubborn = ("import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "pathlib.Path(sys.argv[1]).touch(); time.sleep(120)")
append(service.queue.path, job_line(id="stubborn", command=[sys.executable, "-c", stubborn,
                                                            str(ready)]))
service.tick(clock())
run = service.ledger.run("stubborn")
(state / "pid").write_text(str(json.loads(run.token)["pid"]))
while not ready.exists():
    time.sleep(0.01)
lose_gpu(backend, monitor, clock, run.gpu_indices[0])
service.tick(clock())
print("not killed", flush=True)
"""


def test_a_daemon_killed_at_a_lost_gpus_stop_ends_its_job_failed_at_restart(
    tmp_path: Path,
) -> None:
    """Killed at ``gpu_lost_stop``: the restarted daemon ends the job ``failed`` with the loss
    as its reason, at the SIGTERM the dead one sent, and goes on stopping its run (SIGKILL
    when the grace from that SIGTERM is over), rather than adopting it as running."""
    env = {k: v for k, v in os.environ.items() if k != killpoints.ENV}
    env[killpoints.ENV] = "gpu_lost_stop"
    env["PYTHONPATH"] = str(REPO)
    ready = tmp_path / "ready"
    done = subprocess.run(
        [sys.executable, "-c", LOSE_A_GPU, str(tmp_path), str(ready)],
        cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=STARTUP_S,
    )  # fmt: skip
    pid = int((tmp_path / "pid").read_text())
    try:
        assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
        assert "not killed" not in done.stdout
        with Ledger.open_readonly(tmp_path / "ledger.db") as ledger:
            assert ledger.job("stubborn").state == "running"  # its end not recorded
            assert [s.run.job_id for s in ledger.stopping_runs(interrupted=True)] == ["stubborn"]
            sent_at = ledger.cancel_sent_at("stubborn")
        assert sent_at is not None and process_start_ticks(pid) is not None  # SIGTERM ignored

        clock = FakeClock()
        clock.advance(5)  # restarted 4 s after the SIGTERM, within the 10 s grace
        mono = [50.0]
        executor = LocalExecutor(grace_s=10.0, log_dir=tmp_path / "logs",
                                 monotonic=lambda: mono[0])  # fmt: skip
        service, _, _ = build(tmp_path, clock, executor)
        assert service.ledger.job("stubborn").state == "failed"
        assert "lost" in service.ledger.transitions("stubborn")[-1].reason
        ended = service.ledger.run("stubborn")
        assert ended is not None and ended.finished_at == sent_at
        service.tick(clock())
        assert process_start_ticks(pid) is not None  # within the grace
        mono[0] += 7.0  # 11 s after the SIGTERM: the grace is over
        for _ in range(200):
            service.tick(clock.advance(0.01))
            if process_start_ticks(pid) is None:
                break
            time.sleep(0.02)
        assert process_start_ticks(pid) is None  # killed
        service.tick(clock.advance(1))
        assert service.ledger.stopping_runs() == []
    finally:
        if process_start_ticks(pid) is not None:
            os.killpg(pid, signal.SIGKILL)
