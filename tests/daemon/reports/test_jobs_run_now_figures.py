"""`carbond jobs --json` gave `run_now_total_g` (the counterfactual stored at submission) and
`saved_g` (computed from the counterfactual as the run turned out), so `run_now_total_g -
measured_total_g` was not `saved_g` and nothing said which run-now figure the saving used.
Both are there now, named."""

from __future__ import annotations

import json
from pathlib import Path

from daemon.ledger import Ledger
from daemon.reports.render import unsigned_zero
from tests.daemon.reports.conftest import Run


def test_jobs_names_the_stored_and_the_realised_run_now_grams(
    demo_state: Path, carbond: Run
) -> None:
    rows = json.loads(carbond("jobs", "--state-dir", str(demo_state), "--json"))
    with Ledger.open_readonly(demo_state / "ledger.db") as ledger:
        stored = {r["job_id"]: ledger.counterfactual(r["job_id"]) for r in rows}
        outcomes = {r["job_id"]: ledger.outcome(r["job_id"]) for r in rows}
    for row in rows:
        counterfactual, outcome = stored[row["job_id"]], outcomes[row["job_id"]]
        assert counterfactual is not None and outcome is not None
        assert row["run_now_total_g"] == counterfactual["total_g"]
        assert row["run_now_realised_g"] == outcome["run_now_total_g"]
        assert row["saved_g"] == row["run_now_realised_g"] - row["measured_total_g"]
    # the two differ (the realised intensity, the run's own energy): both are needed
    assert any(r["run_now_total_g"] != r["run_now_realised_g"] for r in rows)


def test_status_says_the_saving_jobs_and_report_give(demo_state: Path, carbond: Run) -> None:
    """``carbond status`` printed the run-now grams stored at the decision next to the
    measured grams, and no saving: a reader subtracting them got another figure than the
    ``saved_g`` that ``carbond jobs`` and ``carbond report`` give (the counterfactual as the
    run turned out). It prints that saving and the run-now figure it is made from."""
    rows = json.loads(carbond("jobs", "--state-dir", str(demo_state), "--json"))
    for row in rows:
        text = carbond("status", row["job_id"], "--state-dir", str(demo_state))
        saved = unsigned_zero(f"{row['saved_g']:.4g}")
        realised = f"{row['run_now_realised_g']:.4g}"
        line = f"  saved {saved} g against run-now as the run turned out ({realised} g)"
        assert line in text.splitlines(), text
