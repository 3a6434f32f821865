"""``carbond jobs`` says why a job failed, was cancelled or expired: the reason its ledger
transition recorded, which only ``carbond status ID`` showed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.cli.cli_run import run_cli
from tests.daemon.helpers import append, job_line, make_service


def test_jobs_shows_why_a_job_failed_or_was_cancelled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failed run (its exit code), a job the daemon rejected (fits no device), one cancelled
    before it started: ``jobs`` listed their state alone. Each row now has the reason of the
    transition into that state, the one ``status`` shows (``--json``: all of it; the table
    cuts a long one, with ``...``); a job that succeeded or still waits has none."""
    clock = FakeClock()
    executor = RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor)
    service.start(clock())
    queue = service.queue.path
    append(
        queue, job_line(id="ok") + job_line(id="bad") + job_line(id="huge", min_gpu_memory_gb=9000)
    )
    append(queue, job_line(id="gone") + json.dumps({"cancel": "gone"}) + "\n")
    service.tick(clock())
    executor.finish("ok", clock(), 0)
    executor.finish("bad", clock(), 3)
    service.tick(clock.advance(60))
    service.close()

    code, out, err = run_cli(capsys, "jobs", "--state-dir", str(tmp_path), "--json")
    assert code == 0, err
    rows = {row["job_id"]: row for row in json.loads(out)}
    for job_id, row in rows.items():
        code, shown, err = run_cli(capsys, "status", job_id, "--state-dir", str(tmp_path), "--json")
        assert code == 0, err
        last = json.loads(shown)["transitions"][-1]
        expected = last["reason"] if row["state"] in ("failed", "cancelled", "expired") else None
        assert row["reason"] == expected, (job_id, row["state"])
    assert {job_id: row["state"] for job_id, row in rows.items()} == {
        "ok": "succeeded", "bad": "failed", "huge": "failed", "gone": "cancelled"}  # fmt: skip
    assert rows["bad"]["reason"] == "exit code 3"
    assert rows["huge"]["reason"].startswith("rejected: ") and len(rows["huge"]["reason"]) > 48

    code, out, err = run_cli(capsys, "jobs", "--state-dir", str(tmp_path))
    assert code == 0, err
    cells = {line.split("|")[1].strip(): line.split("|")[-2].strip()
             for line in out.splitlines() if line.startswith("| ")}  # fmt: skip
    assert (cells["job_id"], cells["bad"], cells["ok"]) == ("reason", "exit code 3", "-")
    cut = cells["huge"].removesuffix("...")  # a long reason, cut to fit: all of it in --json
    assert cut != cells["huge"] and rows["huge"]["reason"].startswith(cut)
    assert len(cells["huge"]) <= 48
