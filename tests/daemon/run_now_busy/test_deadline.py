"""A run-now counterfactual that would start at or after its job's deadline holds no GPU
(daemon/run_now_busy/, policies/run_now_claims.py): run-now expires such a job waiting, so
its copy never runs; also after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line
from tests.daemon.run_now_busy.counterfactuals import (
    CISO_ONLY,
    LONG,
    carbon_window_service,
    counterfactual_run,
)


@pytest.mark.parametrize("restart", ["none", "running", "ended"])
@pytest.mark.parametrize("deadline", ["+1h", "copy"])
def test_a_counterfactual_starting_at_or_after_its_deadline_holds_no_gpu(
    tmp_path: Path, restart: str, deadline: str
) -> None:
    """ "x" is held for a cleaner hour on the only GPU; its counterfactual run holds that GPU
    for ~2.5 h. "a", a short job due in an hour (or exactly when "x"'s copy ends), would
    start in run-now after that copy: run-now expires it waiting, its copy never runs. "b",
    arriving 5 to 10 min later (after a restart too, "a" running or ended), waits for "x"'s copy
    only; it used to wait for "a"'s copy too, a run run-now never starts."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = carbon_window_service(tmp_path, executor, clock, CISO_ONLY)
    append(service.queue.path, job_line(id="x", **LONG))
    service.tick(clock())
    assert service.ledger.job("x").state == "planned"
    _, _, x_end = counterfactual_run(service.ledger, "x")
    clock.advance(60)
    due = "+1h" if deadline == "+1h" else x_end.isoformat()
    append(service.queue.path, job_line(id="a", deadline=due))
    service.tick(clock())
    a_devices, a_start, a_end = counterfactual_run(service.ledger, "a")
    a_deadline = service.ledger.job("a").deadline
    assert a_devices == ("ciso/0",) and a_deadline is not None and a_start >= a_deadline
    assert a_start == x_end and a_end > a_start
    assert service.ledger.job("a").state == "running"
    if restart == "ended":
        executor.finish("a", clock.advance(300))
        service.tick(clock())
        assert service.ledger.job("a").state == "succeeded"
    if restart != "none":
        service.ledger.close()
        service = carbon_window_service(tmp_path, executor, clock, CISO_ONLY)
    clock.advance(300)
    append(service.queue.path, job_line(id="b", **LONG))
    service.tick(clock())
    b_devices, b_start, _ = counterfactual_run(service.ledger, "b")
    assert b_devices == ("ciso/0",) and b_start == x_end
