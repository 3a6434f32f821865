"""A job taken back unstarted (its launch never confirmed, its executor gave it back) past its
deadline is expired at once: its run-now copy, kept while the job ran (daemon/run_now_busy/:
to hold again as the run went on), is let go then, not kept for the daemon's lifetime."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from daemon.executors.base import ExitStatus, NotStarted, RunHandle
from daemon.settings import RegionSettings
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line
from tests.daemon.run_now_busy.counterfactuals import carbon_window_service

QC_ONLY = (RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("T4",)),)
LONG = {"model": "llama-3b", "requests": 2000, "regions": ["qc"]}


class _TakesBack(RecordingExecutor):
    """Answers a poll for the jobs in ``back`` that they never started (as a launch found
    unconfirmed is answered by its executor)."""

    def __init__(self) -> None:
        super().__init__(auto_finish=False)
        self.back: set[str] = set()

    def poll(self, handles: Sequence[RunHandle], now: datetime) -> list[ExitStatus]:
        taken = [NotStarted(h.job_id, now, None, None, "never started: taken back")
                 for h in handles if h.job_id in self.back]  # fmt: skip
        rest = [h for h in handles if h.job_id not in self.back]
        self.back.clear()
        return [*taken, *super().poll(rest, now)]


def test_a_job_taken_back_past_its_deadline_lets_its_kept_copy_go(tmp_path: Path) -> None:
    """ "w" runs on the only GPU, 30 min past its predicted end; "a" (due in 12 h) waits for
    it, its copy from w's predicted end, and runs from w's real one; "y" waits behind them
    (the rounds go on). "a"'s copy ends while "a" runs (kept: "a" may run past its own end).
    Past its deadline "a"'s executor says it never started: "a" is requeued and expired at
    once. Its copy used to stay kept for ever (nothing let it go: it held no GPU, and its job
    neither ran nor ended through an executor's end), one entry per such job."""
    clock, executor = FakeClock(), _TakesBack()
    service = carbon_window_service(tmp_path, executor, clock, QC_ONLY)
    append(service.queue.path, job_line(id="w", **LONG))
    service.tick(clock())
    append(service.queue.path, job_line(id="a", deadline="+12h", **LONG))
    service.tick(clock.advance(60))
    append(service.queue.path, job_line(id="y", deadline="+72h", **LONG))
    service.tick(clock.advance(60))
    stored = service.ledger.counterfactual("a")
    assert stored is not None
    copy_start = datetime.fromisoformat(stored["start"])
    executor.finish("w", copy_start + timedelta(minutes=30))
    while service.ledger.job("a").state != "running":
        service.tick(clock.advance(900))
    assert clock() < copy_start + timedelta(seconds=stored["duration_s"])  # its copy runs
    deadline = service.ledger.job("a").deadline
    assert deadline is not None
    while clock() <= deadline:  # its copy ends, "a" runs on past its deadline
        service.tick(clock.advance(1800))
        assert service.ledger.job("y").state in ("queued", "planned")
    executor.back.add("a")
    service.tick(clock.advance(60))
    assert service.ledger.job("a").state == "expired"
    service.tick(clock.advance(60))
    assert not service._memory.run_now_busy.cut("a", None)  # not kept: nothing to let go
