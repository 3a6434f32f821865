"""`carbond report` had no count of missed deadlines, though docs/metrics.md says it gives the
figures of the `carbond_ledger_*` gauges over any period: the jobs that ended after their
deadline are counted per group (`deadlines_missed`), those that expired unstarted in the
period beside the rows (`expired_unstarted`); together, the ledger's count."""

from __future__ import annotations

import json
from pathlib import Path

from daemon.ledger import Ledger
from daemon.settings import RegionSettings
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line, make_service
from tests.daemon.reports.conftest import Run

ONE_T4 = (RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("T4",)),)


def _late_and_expired(state: Path) -> None:
    """``first`` runs three times as long as predicted, past its deadline; ``second`` waits
    behind it until its deadline passes (expires); ``third`` has no deadline."""
    clock, executor = FakeClock(), RecordingExecutor(duration_factor=3.0)
    service = make_service(state, executor, regions=ONE_T4)
    service.start(clock())
    append(service.queue.path,
           job_line(id="first", model="llama-3.2-1b", requests=400, deadline="+30m"))  # fmt: skip
    service.tick(clock())
    append(service.queue.path,
           job_line(id="second", model="llama-3.2-1b", requests=40, deadline="+20m")
           + job_line(id="third", model="llama-3.2-1b", requests=40))  # fmt: skip
    for _ in range(60):
        service.tick(clock())
        clock.advance(300)
    service.close()
    service.ledger.close()


def test_the_report_counts_the_deadlines_the_ledger_gauge_counts(
    tmp_path: Path, carbond: Run
) -> None:
    _late_and_expired(tmp_path)
    with Ledger.open_readonly(tmp_path / "ledger.db") as ledger:
        states = {j: ledger.job(j).state for j in ("first", "second", "third")}
        missed = ledger.outcome_totals()["deadlines_missed"]
    assert states == {"first": "succeeded", "second": "expired", "third": "succeeded"}
    assert missed == 2
    state = str(tmp_path)
    report = json.loads(carbond("report", "--state-dir", state, "--by", "job", "--json"))
    rows = {row["key"]: row["deadlines_missed"] for row in report["rows"]}
    assert rows == {"first": 1, "third": 0}
    assert report["totals"]["deadlines_missed"] == 1
    assert report["expired_unstarted"] == 1
    assert report["totals"]["deadlines_missed"] + report["expired_unstarted"] == missed
    table = carbond("report", "--state-dir", state)
    assert "late" in table and "expired_unstarted: 1" in table
    # a period before any deadline: nothing expired in it
    early = json.loads(carbond("report", "--state-dir", state, "--until", "2024-06-01", "--json"))
    assert early["expired_unstarted"] == 0
