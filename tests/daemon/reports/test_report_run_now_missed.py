"""A job whose run-now counterfactual would start at or after its deadline is one run-now
would have missed (it expires waiting, its copy never runs): run by the policy, it claims no
saving against that copy (its own grams are its counterfactual's, as for work not done), and
the report counts it (`run_now_missed`, text and `--json`)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from daemon.ledger import Ledger
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line, make_service
from tests.daemon.reports.conftest import Run
from tests.daemon.run_now_busy.counterfactuals import CISO_ONLY, LONG


@pytest.mark.parametrize("restart", [False, True])
def test_a_job_run_now_would_have_missed_claims_no_saving_and_is_counted(
    tmp_path: Path, carbond: Run, restart: bool
) -> None:
    """ "x" is held for a cleaner hour on the only GPU; its copy holds that GPU ~2.5 h. "a",
    due in an hour, would start under run-now after that copy: run-now expires it. The policy
    runs it at once, and it succeeds. Its saving used to be counted against the grams of the
    copy run-now never ran (its outcome's run_now_total_g that copy's: 1.36 g against its
    1.07 g, 21 % "saved"); now it saves nothing, and the report says one job run-now would
    have missed (also when the daemon restarted while "a" ran)."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, policy="carbon-window", regions=CISO_ONLY)
    service.start(clock())
    append(service.queue.path, job_line(id="x", **LONG))
    service.tick(clock())
    assert service.ledger.job("x").state == "planned"
    clock.advance(60)
    append(service.queue.path, job_line(id="a", deadline="+1h"))
    service.tick(clock())
    stored = service.ledger.counterfactual("a")
    deadline = service.ledger.job("a").deadline
    assert stored is not None and deadline is not None
    assert datetime.fromisoformat(stored["start"]) >= deadline
    assert service.ledger.job("a").state == "running"
    if restart:
        service.ledger.close()
        service = make_service(tmp_path, executor, policy="carbon-window", regions=CISO_ONLY)
        service.start(clock())
    executor.finish("a", clock.advance(300))
    service.tick(clock())
    assert service.ledger.job("a").state == "succeeded"
    outcome = service.ledger.outcome("a")
    assert outcome is not None and outcome["total_g"] > 0
    assert outcome["run_now_total_g"] == outcome["total_g"]  # no saving claimed
    service.close()
    service.ledger.close()
    with Ledger.open_readonly(tmp_path / "ledger.db") as ledger:
        assert ledger.run_now_missed() == 1
    state = str(tmp_path)
    report = json.loads(carbond("report", "--state-dir", state, "--by", "job", "--json"))
    assert report["run_now_missed"] == 1
    row = {r["key"]: r for r in report["rows"]}["a"]
    assert row["saved_kg"] == 0
    assert "run_now_missed: 1" in carbond("report", "--state-dir", state)
    before = json.loads(carbond("report", "--state-dir", state, "--until", "2024-06-01",
                                "--json"))  # fmt: skip
    assert before["run_now_missed"] == 0  # "a" finished after that
