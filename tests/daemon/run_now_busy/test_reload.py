"""A reload (SIGHUP) and the waiting jobs' run-now copies and decisions: the new service
takes them over from the one it replaces instead of reading each back from the ledger."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from daemon.assemble import build_daemon, rebuild_service
from daemon.ledger import DecisionRecord, LatestPlan
from daemon.settings import RegionSettings, Settings
from daemon.testing import FakeClock
from tests.daemon.helpers import append, job_line
from tests.daemon.run_now_busy.counterfactuals import LONG

# One T4: the jobs wait for it, each with its run-now copy recorded at its first decision.
REGION = RegionSettings(name="qc", zone="CA-QC", executor="simulated", gpus=("T4",))


def test_a_reload_reads_no_waiting_jobs_copy_or_decision_back_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first plan after a reload read every waiting job's run-now copy (to hold it
    again, held already) and its latest decision (to tell a new decision, the replaced
    service knew it) back from the ledger, one query each: ~0.5 s of a reload's first plan
    with 5,000 jobs waiting. Only the planned jobs' stored plans are still read, all in one
    read (:meth:`daemon.ledger.Ledger.latest_plans`); nothing is decided differently."""
    settings = Settings(state_dir=tmp_path, regions=(REGION,), policy={"name": "carbon-window"},
                        intensity={"source": "static"}, gpu={"backend": "simulated"})  # fmt: skip
    clock = FakeClock()
    daemon = build_daemon(settings, gpu_clock=clock.monotonic())
    try:
        daemon.service.start(clock())
        for i in range(8):
            append(daemon.service.queue.path, job_line(id=f"j{i}", **LONG))
        daemon.service.tick(clock())
        daemon.service.tick(clock.advance(30))
        ledger = daemon.ledger
        waiting = {j.job_id: j.state for j in ledger.jobs() if j.state in ("queued", "planned")}
        assert len(waiting) >= 6
        assert {w.job_id for w in ledger.waiting_counterfactuals()} == waiting.keys()
        decided = len(ledger.rows("decisions"))

        service = rebuild_service(daemon, settings.model_copy(), None)
        read: list[tuple[str, str]] = []
        plans_read: list[list[str]] = []
        counterfactual, latest = ledger.counterfactual, ledger.latest_decision
        latest_plans = ledger.latest_plans

        def counted_counterfactual(job_id: str) -> dict[str, Any] | None:
            read.append(("counterfactual", job_id))
            return counterfactual(job_id)

        def counted_latest(job_id: str, *, alternatives: bool = True) -> DecisionRecord | None:
            read.append(("latest_decision", job_id))
            return latest(job_id, alternatives=alternatives)

        def counted_plans(job_ids: Collection[str]) -> dict[str, LatestPlan]:
            plans_read.append(sorted(job_ids))
            return latest_plans(job_ids)

        monkeypatch.setattr(ledger, "counterfactual", counted_counterfactual)
        monkeypatch.setattr(ledger, "latest_plans", counted_plans)
        monkeypatch.setattr(ledger, "latest_decision", counted_latest)
        service.plan(clock.advance(30))

        assert [j for what, j in read if what == "counterfactual"] == []
        planned = sorted(j for j, state in waiting.items() if state == "planned")
        assert [j for what, j in read if what == "latest_decision"] == []
        assert plans_read == [planned]  # in one read
        assert len(ledger.rows("decisions")) == decided  # the same decisions: none recorded
        specs = {job_id: entry[1] for job_id, entry in service._memory.specs.items()}
        assert waiting.keys() <= specs.keys()
        assert all(specs[j].run_now_recorded for j in waiting)
    finally:
        daemon.close()
