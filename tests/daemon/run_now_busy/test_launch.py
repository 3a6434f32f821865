"""A job whose launch fails through a fault of its own (its command cannot start: an empty
command, a working directory its user cannot enter) fails its run-now counterfactual at its
start too (daemon/run_now_busy/): run-now would have failed the same launch at once. A launch
failing for carbond or the cluster leaves the copy whole; also after a restart."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.errors import DaemonError
from daemon.executors.base import LaunchSpec, RunHandle
from daemon.executors.errors import JobNotRunnableError
from daemon.executors.local import LocalExecutor
from daemon.executors.wrapper import EXIT_NOT_RUNNABLE
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line
from tests.daemon.run_now_busy.counterfactuals import (
    LONG,
    carbon_window_service,
    counterfactual_run,
)


class _Refusing(RecordingExecutor):
    """Refuses job "a": as not runnable (``own``: a fault of its own) or as carbond's fault."""

    def __init__(self, own: bool) -> None:
        super().__init__(auto_finish=False)
        self.own = own

    def launch(self, spec: LaunchSpec, now: datetime) -> RunHandle:
        if spec.job_id != "a":
            return super().launch(spec, now)
        if self.own:
            raise JobNotRunnableError(f"job {spec.job_id}: empty command")
        raise DaemonError(f"job {spec.job_id}: cannot start in /var/lib/carbond/logs: disk full")


@pytest.mark.parametrize("restart", [False, True])
@pytest.mark.parametrize("own", [True, False])
def test_a_launch_failing_on_its_own_frees_the_gpu_its_counterfactual_held(
    tmp_path: Path, own: bool, restart: bool
) -> None:
    """ "a" starts at once in clean Quebec; its counterfactual run would hold the fast GPU
    for ~3 h. Its launch is refused: its command cannot start (or carbond's log directory
    cannot be written). "b" arrives 10 min later: run-now would have failed "a"'s launch at
    once, so "b"'s copy gets the fast GPU then; it used to wait the whole 3 h for a run that
    could never start. A refusal that is carbond's fault keeps "a"'s copy whole, "b" waits."""
    clock, executor = FakeClock(), _Refusing(own)
    service = carbon_window_service(tmp_path, executor, clock)
    append(service.queue.path, job_line(id="a", **LONG))
    service.tick(clock())
    assert service.ledger.job("a").state == "failed"
    reason = service.ledger.transitions("a")[-1].reason
    assert reason.startswith("launch failed: job a: ")
    if restart:
        service.ledger.close()
        service = carbon_window_service(tmp_path, executor, clock)
    clock.advance(600)
    append(service.queue.path, job_line(id="b", **LONG))
    service.tick(clock())
    a_devices, _, a_end = counterfactual_run(service.ledger, "a")
    b_devices, b_start, _ = counterfactual_run(service.ledger, "b")
    assert a_devices == ("ciso/0",) and a_end > clock() + timedelta(hours=1)
    if own:
        assert b_devices == a_devices and b_start < clock() + timedelta(hours=1)
    else:
        assert b_devices != a_devices or b_start >= a_end
    run = service.ledger.run("a")  # the wrapper's code for a job that cannot start
    assert run is not None and run.exit_code == (EXIT_NOT_RUNNABLE if own else None)


@pytest.mark.parametrize("what", ["empty command", "missing working directory"])
def test_the_local_executor_refuses_a_job_that_cannot_start_as_not_runnable(
    tmp_path: Path, what: str
) -> None:
    """The local executor's own checks name a job's own fault as such (JobNotRunnableError)."""
    executor = LocalExecutor(allow_root_jobs=True, log_dir=tmp_path / "logs")
    argv = () if what == "empty command" else ("true",)
    cwd = str(tmp_path / "gone") if what != "empty command" else None
    spec = LaunchSpec(job_id="j", argv=argv, uid=os.geteuid(), gid=os.getegid(),
                      gpu_indices=(), log_dir=tmp_path / "logs", cwd=cwd)  # fmt: skip
    with pytest.raises(JobNotRunnableError, match="job j: "):
        executor.launch(spec, datetime(2026, 6, 1, 12, tzinfo=UTC))
    assert not (tmp_path / "logs").exists()  # refused before anything was set up
