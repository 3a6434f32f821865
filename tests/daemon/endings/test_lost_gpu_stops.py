"""A lost GPU's job is recorded ``failed`` at once and its run stopped (SIGTERM, SIGKILL after
the local executor's grace): a daemon restarted within the grace goes on stopping it, with the
grace counted from the first SIGTERM."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from daemon.executors.jobfiles import process_start_ticks
from daemon.executors.local import LocalExecutor
from daemon.testing import FakeClock
from tests.daemon.endings.stubborn_jobs import graced_executor, started_stubborn, wait_until
from tests.daemon.helpers import append, job_line
from tests.daemon.measurement.measured_service import build, lose_gpu


def test_a_restart_within_the_grace_goes_on_stopping_a_lost_gpus_job(tmp_path: Path) -> None:
    """The stop of a lost GPU's run was kept in memory only: a daemon restarted within the
    grace never sent the SIGKILL, and a job ignoring SIGTERM ran on, on a GPU the planner may
    give away. The ledger keeps the stop now; the restarted daemon resumes it, SIGKILL when
    the grace from the first SIGTERM is over (not a new grace)."""
    clock = FakeClock()
    first_executor = graced_executor(tmp_path, [1000.0])
    first, backend, monitor = build(tmp_path, clock, first_executor)
    with started_stubborn(first, first_executor, clock, tmp_path) as job:
        assert job.run.gpu_indices is not None
        lose_gpu(backend, monitor, clock, job.run.gpu_indices[0])
        first.tick(clock())  # SIGTERM sent (ignored), the job recorded failed
        assert first.ledger.job("stubborn").state == "failed"
        first.ledger.close()  # the daemon dies within the grace

        clock.advance(4)  # restarted 4 s into the 10 s grace, with a new monotonic clock
        restarted_mono = [50.0]
        executor = graced_executor(tmp_path, restarted_mono)
        service, _, _ = build(tmp_path, clock, executor)
        service.tick(clock())
        restarted_mono[0] += 5.0  # 9 s after the first SIGTERM: still within the grace
        service.tick(clock.advance(5))
        assert process_start_ticks(job.pid) == job.ticks
        restarted_mono[0] += 2.0  # 11 s after it: the grace is over
        for _ in range(200):
            service.tick(clock.advance(0.01))
            if process_start_ticks(job.pid) is None:
                break
            time.sleep(0.02)
        assert process_start_ticks(job.pid) is None  # killed
        assert first_executor._children[job.pid].wait(timeout=5) == -signal.SIGKILL
        service.tick(clock.advance(1))
        assert service.ledger.stopping_runs() == []  # gone: no later daemon stops it again
        assert service.ledger.job("stubborn").state == "failed"
        assert "GPU" in service.ledger.transitions("stubborn")[-1].reason


def test_a_job_that_failed_on_its_own_before_its_gpu_was_lost_keeps_its_exit_code(
    tmp_path: Path,
) -> None:
    """A job that exited 3, then its GPU fell off the bus before the next reconcile saw the
    end: it was recorded as failed by the loss (no exit code, the GPU's reason), hiding the
    job's own failure. An end the executor had already recorded wins."""
    clock = FakeClock()
    executor = LocalExecutor(log_dir=tmp_path / "logs")
    service, backend, monitor = build(tmp_path, clock, executor)
    append(service.queue.path, job_line(id="broken", command=["sh", "-c", "exit 3"]))
    service.ingest(clock())
    service.plan(clock())  # started, not reconciled
    run = service.ledger.run("broken")
    assert run is not None and run.gpu_indices is not None
    status = tmp_path / "logs" / "broken.status.json"
    wait_until(status.exists, "the job did not end")
    lose_gpu(backend, monitor, clock, run.gpu_indices[0])
    service.tick(clock())
    assert service.ledger.job("broken").state == "failed"
    assert service.ledger.transitions("broken")[-1].reason == "exit code 3"
    ended = service.ledger.run("broken")
    assert ended is not None and ended.exit_code == 3
    assert service.ledger.stopping_runs() == []  # nothing left to stop


def test_a_restart_within_the_grace_of_an_owners_cancel_does_not_start_a_new_grace(
    tmp_path: Path,
) -> None:
    """The owner's cancel was sent (SIGTERM, ignored) and the daemon restarted 4 s into the
    10 s grace: the restarted daemon sent SIGTERM again and waited a whole new grace, so a
    job ignoring SIGTERM ran up to a grace longer per restart. The grace counts from the
    first send (``runs.cancel_sent_at``) now."""
    clock = FakeClock()
    first_executor = graced_executor(tmp_path, [1000.0])
    first, _, _ = build(tmp_path, clock, first_executor)
    with started_stubborn(first, first_executor, clock, tmp_path) as job:
        append(first.queue.path, json.dumps({"cancel": "stubborn"}) + "\n")
        first.tick(clock.advance(1))  # the cancel sent: SIGTERM, ignored
        assert first.ledger.cancel_sent_at("stubborn") == clock()
        first.ledger.close()  # the daemon dies within the grace

        clock.advance(4)
        restarted_mono = [50.0]
        executor = graced_executor(tmp_path, restarted_mono)
        service, _, _ = build(tmp_path, clock, executor)
        service.tick(clock())  # SIGTERM again
        restarted_mono[0] += 5.0  # 9 s after the first SIGTERM
        service.tick(clock.advance(5))
        assert process_start_ticks(job.pid) == job.ticks
        restarted_mono[0] += 2.0  # 11 s after it (7 s after the restart)
        for _ in range(200):
            service.tick(clock.advance(0.01))
            if service.ledger.job("stubborn").state != "running":
                break
            time.sleep(0.02)
        assert process_start_ticks(job.pid) is None
        assert first_executor._children[job.pid].wait(timeout=5) == -signal.SIGKILL  # reaped
        assert service.ledger.job("stubborn").state == "cancelled"
        ended = service.ledger.run("stubborn")
        assert ended is not None and ended.signal == signal.SIGKILL


def test_a_daemon_killed_between_a_lost_gpus_stop_and_its_jobs_end_ends_it_at_restart(
    tmp_path: Path,
) -> None:
    """The daemon sent a lost GPU's job SIGTERM (ignored) and recorded the stop, then died
    before it recorded the job's end. The restarted one, whose inventory has the GPU again
    (the loss not seen anew), adopted the job as running: never killed, its ``runs.stopping``
    left behind, ``carbond status`` showing it running. It ends the job as the first daemon
    would have (failed, the loss its reason) and goes on stopping its run: SIGKILL after the
    grace from the first SIGTERM, then the stop is cleared."""
    clock = FakeClock()
    first_executor = graced_executor(tmp_path, [1000.0])
    first, _, _ = build(tmp_path, clock, first_executor)
    with started_stubborn(first, first_executor, clock, tmp_path) as job:
        lost_at = clock.advance(1)
        # what check_gpus does first for a lost GPU's running job; then the daemon dies
        first._endings.stops.stop(job.run, lost_at, "GPU 0 lost: fell off the bus")
        assert first.ledger.job("stubborn").state == "running"
        first.ledger.close()

        clock.advance(4)  # restarted 4 s into the 10 s grace
        restarted_mono = [50.0]
        executor = graced_executor(tmp_path, restarted_mono)
        service, _, _ = build(tmp_path, clock, executor)
        assert service.ledger.job("stubborn").state == "failed"
        assert service.ledger.transitions("stubborn")[-1].reason == "GPU 0 lost: fell off the bus"
        ended = service.ledger.run("stubborn")
        assert ended is not None and ended.finished_at == lost_at  # when its SIGTERM went out
        assert [s.run.job_id for s in service.ledger.stopping_runs()] == ["stubborn"]
        service.tick(clock())
        assert process_start_ticks(job.pid) == job.ticks  # within the grace
        restarted_mono[0] += 7.0  # 11 s after the first SIGTERM: the grace is over
        for _ in range(200):
            service.tick(clock.advance(0.01))
            if process_start_ticks(job.pid) is None:
                break
            time.sleep(0.02)
        assert process_start_ticks(job.pid) is None  # killed
        assert first_executor._children[job.pid].wait(timeout=5) == -signal.SIGKILL
        service.tick(clock.advance(1))
        assert service.ledger.stopping_runs() == []
        assert service.ledger.stopping_runs(interrupted=True) == []
