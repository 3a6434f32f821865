"""How the service records runs' ends (daemon.endings.finishing): one end per job, whatever the poll
reports, each with its outcome row, committed together."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from structlog.testing import capture_logs

from daemon.executors.base import ExitStatus, RunHandle
from daemon.executors.errors import ExecutorError
from daemon.executors.local import LocalExecutor
from daemon.ledger import Ledger
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line, make_service


class _Repeating(RecordingExecutor):
    """Reports every end twice, and again the ends in ``stale`` (jobs already ended)."""

    stale: list[ExitStatus]

    def poll(self, handles: Sequence[RunHandle], now: datetime) -> list[ExitStatus]:
        ended = super().poll(handles, now)
        return [*ended, *ended, *getattr(self, "stale", [])]


def _ends(ledger: Ledger, job_id: str) -> list[str]:
    return [t.to_state for t in ledger.transitions(job_id) if t.from_state == "running"]


def test_each_end_is_recorded_once_with_its_outcome(tmp_path: Path) -> None:
    clock, executor = FakeClock(), _Repeating(auto_finish=False)
    service = make_service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="a") + job_line(id="b") + job_line(id="c"))
    service.tick(clock())
    assert len(executor.launches) == 3
    executor.finish("a", clock.advance(30), 0)
    executor.finish("b", clock.advance(0), 2)
    ended = service.reconcile(clock.advance(1))
    assert [s.job_id for s in ended] == ["a", "b", "a", "b"]  # as the poll reported them
    ledger = service.ledger
    assert (_ends(ledger, "a"), _ends(ledger, "b"), _ends(ledger, "c")) == (
        ["succeeded"], ["failed"], [],
    )  # fmt: skip
    for job_id in ("a", "b"):
        run, outcome = ledger.run(job_id), ledger.outcome(job_id)
        assert run is not None and run.finished_at == clock() - timedelta(seconds=1)
        assert outcome is not None and outcome["finished_at"] == run.finished_at.isoformat()
        assert outcome["total_g"] is not None and outcome["total_g"] > 0
    totals = ledger.outcome_totals()
    assert totals["jobs"] == 2
    executor.stale = [ExitStatus("a", clock(), 1)]  # a's end reported again, otherwise
    service.reconcile(clock.advance(1))
    assert _ends(ledger, "a") == ["succeeded"] and ledger.outcome_totals() == totals
    assert [t.to_state for t in ledger.transitions("c")][-1] == "running"
    ledger.close()


class _TrapsTerm(RecordingExecutor):
    """An executor that measures energy (as ``sacct``) whose jobs trap SIGTERM and exit 0."""

    def cancel(self, handle: RunHandle, now: datetime) -> None:
        self.cancels.append(handle.job_id)
        self.finish(handle.job_id, now, 0)


def test_a_run_that_exits_0_after_its_owners_cancel_is_cancelled_and_teaches_nothing(
    tmp_path: Path,
) -> None:
    """The owner asked, the cancel was delivered, the job stopped early and exited 0: it is
    recorded cancelled (not succeeded), and its cut-short energy teaches no factor."""
    clock, executor = FakeClock(), _TrapsTerm(auto_finish=False)
    executor.reported_power_w = 250.0
    service = make_service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="a", model="llama-3.2-1b"))
    service.tick(clock())
    append(service.queue.path, '{"cancel": "a"}\n')
    service.tick(clock.advance(10))
    assert executor.cancels == ["a"]
    service.reconcile(clock.advance(1))
    ledger = service.ledger
    assert _ends(ledger, "a") == ["cancelled"]
    run = ledger.run("a")
    assert run is not None and run.exit_code == 0
    decision = ledger.latest_decision("a")
    assert decision is not None and decision.gpu is not None
    assert service.learning.recalibration.get("llama-3.2-1b", decision.gpu).samples == 0
    ledger.close()


def test_a_run_that_ends_on_its_own_before_the_cancel_is_sent_succeeded(tmp_path: Path) -> None:
    """The owner's request was read, but the job ran to its end (exit 0) before the next
    reconcile sent the cancel: it did all its work, so it succeeded and teaches."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    executor.reported_power_w = 250.0
    service = make_service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="a", model="llama-3.2-1b"))
    service.tick(clock())
    append(service.queue.path, '{"cancel": "a"}\n')
    service.ingest(clock.advance(10))  # read; the next reconcile would send it
    executor.finish("a", clock.advance(0.5), 0)
    service.reconcile(clock.advance(5))
    ledger = service.ledger
    assert _ends(ledger, "a") == ["succeeded"]
    decision = ledger.latest_decision("a")
    assert decision is not None and decision.gpu is not None
    assert service.learning.recalibration.get("llama-3.2-1b", decision.gpu).samples == 1
    ledger.close()


class _OddReasons(RecordingExecutor):
    """An executor whose runs end with a reason holding a lone surrogate, as a wrapper status
    file's JSON can (``"\\udcff"``: an exec error quoting an argv that was not UTF-8)."""

    def poll(self, handles: Sequence[RunHandle], now: datetime) -> list[ExitStatus]:
        return [
            ExitStatus(s.job_id, s.finished_at, 127, None, "command not found: \udcffx")
            for s in super().poll(handles, now)
        ]


def test_a_run_end_whose_reason_utf8_cannot_encode_is_stored(tmp_path: Path) -> None:
    """SQLite could not store such a reason: the whole reconcile failed, at every tick, for
    every job, and the daemon could not restart past it."""
    clock, executor = FakeClock(), _OddReasons()
    service = make_service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="a") + job_line(id="b"))
    for _ in range(4):
        service.tick(clock.advance(600))
    ledger = service.ledger
    assert _ends(ledger, "a") == _ends(ledger, "b") == ["failed"]
    run = ledger.run("a")
    assert run is not None and run.reason == "command not found: \ufffdx"
    ledger.close()


def test_a_run_that_exits_0_after_the_round_began_but_before_its_cancel_succeeded(
    tmp_path: Path,
) -> None:
    """carbond run: the owner's cancel was read; the job (a real process) then exited 0 on its
    own after the reconcile round began but before the cancel went out (nothing was left to
    signal). The send was stamped with the round's start, before the job's end, so the job
    was recorded "cancelled ... (it exited 0)" though it did all its work. The send is
    stamped when it is made now (the service's wall clock)."""
    executor = LocalExecutor(log_dir=tmp_path / "logs")
    service = make_service(tmp_path, executor)
    service.launch_clock = lambda: datetime.now(UTC)  # as carbond run
    service.start(datetime.now(UTC))
    append(service.queue.path, job_line(id="a", command=["sleep", "1"]))
    service.ingest(datetime.now(UTC))
    service.plan(datetime.now(UTC))
    append(service.queue.path, '{"cancel": "a"}\n')
    service.ingest(datetime.now(UTC))
    assert service.ledger.job("a").state == "running"
    round_began = datetime.now(UTC)
    status = tmp_path / "logs" / "a.status.json"
    for _ in range(500):  # the round works on while the job ends
        if status.exists():
            break
        time.sleep(0.01)
    service.reconcile(round_began)
    run = service.ledger.run("a")
    assert run is not None and run.finished_at is not None and run.exit_code == 0
    assert run.finished_at > round_began
    assert _ends(service.ledger, "a") == ["succeeded"]
    sent_at = service.ledger.cancel_sent_at("a")
    assert sent_at is not None and sent_at >= run.finished_at
    service.ledger.close()


class _RefusesCancels(RecordingExecutor):
    """An executor whose cancels fail with ``error`` while it is set."""

    error = ""

    def cancel(self, handle: RunHandle, now: datetime) -> None:
        if self.error:
            raise ExecutorError(self.error)
        super().cancel(handle, now)


def test_a_cancel_that_keeps_failing_the_same_way_is_logged_once(tmp_path: Path) -> None:
    """A cancel the executor does not take is sent again every reconcile (every second or
    so), and each retry logged ``job_cancel_failed`` again: a Slurm job whose squeue row
    stayed cut short for a minute wrote sixty identical errors. It is now logged once per
    job and error: again when the error changes, and not after the cancel is taken."""
    clock, executor = FakeClock(), _RefusesCancels(auto_finish=False)
    service = make_service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="a"))
    service.tick(clock())
    executor.error = "squeue printed a row of carbond-a cut short"
    append(service.queue.path, '{"cancel": "a"}\n')

    with capture_logs() as logs:
        for _ in range(3):
            service.tick(clock.advance(1))
        executor.error = "Slurm unreachable (no answer)"
        for _ in range(2):
            service.tick(clock.advance(1))
        executor.error = ""
        service.tick(clock.advance(1))

    failed = [e["error"] for e in logs if e["event"] == "job_cancel_failed"]
    assert failed == ["squeue printed a row of carbond-a cut short",
                      "Slurm unreachable (no answer)"]  # fmt: skip
    assert executor.cancels == ["a"]
    service.ledger.close()
