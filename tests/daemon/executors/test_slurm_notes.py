"""What the Slurm executor remembers of what it logged (:class:`~daemon.executors.slurm.notes.
Notes`): each executor its own, in memory only."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from structlog.testing import capture_logs

from daemon.executors.slurm.queries import Token
from tests.daemon.executors.test_slurm_executor import T0, FakeSlurm, _executor, _spec


def test_each_executor_logs_a_lasting_condition_once_and_a_restarted_one_once_more(
    tmp_path: Path,
) -> None:
    """slurmdbd down and a job whose sacct row stays cut short are each logged once per
    executor however many polls they last; a new executor (a restarted daemon) remembers
    none of it, so it logs each once more, and its ten-minute count for the cut-short row
    starts afresh."""
    slurm = FakeSlurm()
    first = _executor(slurm)
    handle = first.launch(_spec(tmp_path), T0)
    job = slurm.jobs[Token.decode("j1", handle.token).slurm_id]
    job.state, job.cut = "GONE", True
    later = T0 + timedelta(minutes=9)

    with capture_logs() as logs:
        for at in (T0, T0 + timedelta(minutes=1)):
            slurm.dbd_down = True
            assert first.poll([handle], at) == []
            slurm.dbd_down = False
            assert first.poll([handle], at + timedelta(seconds=5)) == []
        assert first.poll([handle], T0 + timedelta(minutes=2)) == []
        restarted = _executor(slurm)
        assert restarted.poll([handle], later) == []
        assert restarted.poll([handle], later + timedelta(minutes=9)) == []  # 9 min of 10
        [given_up] = restarted.poll([handle], later + timedelta(minutes=10))

    events = [e["event"] for e in logs if e["event"].startswith("slurm_sacct_")]
    assert events == [
        "slurm_sacct_failed", "slurm_sacct_back", "slurm_sacct_unreadable",
        "slurm_sacct_failed", "slurm_sacct_back",
        "slurm_sacct_unreadable", "slurm_sacct_lost_given_up",
    ]  # fmt: skip
    assert given_up.finished_at == later  # counted from the restarted executor's first poll
