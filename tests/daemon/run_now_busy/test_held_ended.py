"""A held job its scheduler ended before it started (Slurm: a ``scancel`` of the pending job)
ends its run-now counterfactual run as a waiting job ended in carbond does
(daemon/service/unstarted.py): its owner's ``scancel`` cancels the copy then too, and one
someone else ended (``failed``) keeps it whole, as run-now would have run it. The owner's
``scancel`` used to leave the copy holding its GPU to its end, so a later job's
counterfactual waited for a run that never happened and its savings were skewed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from daemon.executors.base import EndedUnstarted, Held, LaunchSpec, RunHandle
from daemon.executors.errors import HeldJobEndedError
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line
from tests.daemon.run_now_busy.counterfactuals import (
    CISO_ONLY,
    LONG,
    carbon_window_service,
    counterfactual_run,
)


class _Holding(RecordingExecutor):
    """A reserving executor (as Slurm) whose scheduler ends the held jobs named in
    ``ended`` before they start."""

    def __init__(self) -> None:
        super().__init__(auto_finish=False)
        self.ended: dict[str, EndedUnstarted] = {}
        self.holds: list[str] = []

    def hold(
        self, spec: LaunchSpec, start: datetime, token: str, now: datetime, *, new: bool = False
    ) -> Held:
        self.holds.append(spec.job_id)
        end = self.ended.get(spec.job_id)
        return Held(f"held-{spec.job_id}", ended=end)

    def release(
        self, spec: LaunchSpec, token: str, now: datetime, *, new: bool = False
    ) -> RunHandle:
        if (end := self.ended.get(spec.job_id)) is not None:
            raise HeldJobEndedError(f"job {spec.job_id}: {end.reason}", end)
        return self.launch(spec, now)

    def withdraw(self, job_id: str, token: str, now: datetime, *, uid: int) -> Held | None:
        end = self.ended.get(job_id)
        return None if end is None else Held(token, ended=end)

    def ended_held(
        self, held: Sequence[RunHandle], now: datetime
    ) -> dict[str, EndedUnstarted | Held]:
        return {h.job_id: self.ended[h.job_id] for h in held if h.job_id in self.ended}


@pytest.mark.parametrize(("by_owner", "state"), [(True, "cancelled"), (False, "failed")])
def test_a_held_job_ended_in_its_scheduler_ends_its_counterfactual_as_carbond_would(
    tmp_path: Path, by_owner: bool, state: str
) -> None:
    """ "a" is held in the scheduler for a cleaner hour on the only GPU; its counterfactual
    run (run-now starts it at once) holds that GPU for ~2.5 h. 10 min later the scheduler ends
    it unstarted: by its owner (``scancel``), run-now's copy is cancelled then too, so "b",
    arriving then, has the GPU in its counterfactual at once; by someone else, "a" fails and
    its copy runs whole, as for a job carbond fails before it starts, so "b" waits for it."""
    clock, executor = FakeClock(), _Holding()
    service = carbon_window_service(tmp_path, executor, clock, CISO_ONLY)
    append(service.queue.path, job_line(id="a", **LONG))
    service.tick(clock())
    assert service.ledger.job("a").state == "planned" and executor.holds == ["a"]
    clock.advance(600)
    executor.ended["a"] = EndedUnstarted("slurm CANCELLED by uid 1000", by_owner=by_owner)
    append(service.queue.path, job_line(id="b", **LONG))
    service.tick(clock())
    assert service.ledger.job("a").state == state
    _, a_start, a_end = counterfactual_run(service.ledger, "a")
    b_devices, b_start, _ = counterfactual_run(service.ledger, "b")
    assert b_devices == ("ciso/0",) and a_start < clock() < a_end - timedelta(hours=1)
    if by_owner:
        assert b_start < a_end - timedelta(hours=1)
    else:
        assert b_start >= a_end - timedelta(seconds=1)
