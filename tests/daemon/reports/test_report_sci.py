"""SCI per request and per 1k output tokens: the functional units a job delivered."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.daemon.reports.conftest import Run


def test_a_job_that_did_not_succeed_adds_its_grams_but_not_its_requests(
    demo_state: Path, tmp_path: Path, carbond: Run
) -> None:
    """A job cancelled a minute into a 2,000-request run (or one that failed) counted its
    2,000 requests as served: on the walkthrough's ledger the region's g/request fell from
    0.015 to 0.0013, the work not done read as a twelvefold cleaner service. Its grams
    were spent, so they count; its requests and tokens were not served, so they do not."""
    shutil.copy(demo_state / "ledger.db", tmp_path / "ledger.db")
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:  # the job with the most requests was cancelled while running
        (stopped,) = db.execute(
            "SELECT job_id FROM jobs JOIN outcomes USING (job_id)"
            " ORDER BY json_extract(spec_json, '$.requests') DESC LIMIT 1"
        ).fetchone()
        db.execute("UPDATE jobs SET state = 'cancelled' WHERE job_id = ?", (stopped,))
        rows = db.execute(
            "SELECT state, total_g, json_extract(spec_json, '$.requests'),"
            " json_extract(spec_json, '$.output_tokens') FROM jobs JOIN outcomes USING (job_id)"
        ).fetchall()
    db.close()
    grams = sum(total_g for _, total_g, _, _ in rows)
    served = [(requests, tokens) for state, _, requests, tokens in rows if state == "succeeded"]
    assert 0 < len(served) < len(rows)
    report = json.loads(carbond("report", "--state-dir", str(tmp_path), "--json"))
    totals = report["totals"]
    assert totals["total_kg"] * 1000 == pytest.approx(grams)
    assert totals["sci_g_per_request"] == pytest.approx(grams / sum(r for r, _ in served))
    tokens_k = sum(r * t for r, t in served) / 1000
    assert totals["sci_g_per_1k_output_tokens"] == pytest.approx(grams / tokens_k)
    by_job = json.loads(carbond("report", "--state-dir", str(tmp_path), "--by", "job", "--json"))
    row = next(r for r in by_job["rows"] if r["key"] == stopped)
    assert row["total_kg"] > 0 and row["sci_g_per_request"] is None  # nothing served
