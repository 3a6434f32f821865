"""A job running when its deadline passes runs on, and carbond says so: one
``deadline_missed`` warning, the ``jobs_past_deadline`` gauge, ``deadline_missed`` in
``carbond status`` and ``jobs``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.cli import main
from daemon.metrics.prometheus import Metrics
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line, make_service


def test_a_job_running_past_its_deadline_runs_on_and_is_reported_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A running job's deadline was never looked at again: it passed in silence (no log, no
    metric, nothing in ``status`` or ``jobs`` until the job ended). It still runs on (its work
    is not thrown away), but is reported once as it passes and shown while it runs."""
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3))
    executor = RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor)
    metrics = service.metrics = Metrics()  # the Prometheus registry, not served
    service.start(clock())
    append(service.queue.path, job_line(id="late", deadline="+1h")
           + job_line(id="ontime", deadline="+48h") + job_line(id="open"))  # fmt: skip
    service.tick(clock())
    assert set(executor.running()) == {"late", "ontime", "open"}
    gauge = []
    with capture_logs() as events:
        for step in (3599, 2, 600):  # not yet; 1 s past; reported once, not each round
            service.tick(clock.advance(step))
            gauge.append(metrics.registry.get_sample_value("carbond_jobs_past_deadline"))
    missed = [e for e in events if e["event"] == "deadline_missed"]
    assert [(e["job_id"], e["past_s"], e["log_level"]) for e in missed] == [
        ("late", 1.0, "warning")
    ]
    assert gauge == [0, 1, 1]
    assert service.ledger.job("late").state == "running"  # runs on
    clock.advance(3600)  # the real clock's now, about: the CLI judges at its own now
    service.ledger.close()

    assert main(["jobs", "--state-dir", str(tmp_path), "--json"]) == 0
    rows = {row["job_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert {j: rows[j]["deadline_missed"] for j in rows} == {
        "late": True, "ontime": False, "open": None,
    }  # fmt: skip
    assert main(["jobs", "--state-dir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert f"{rows['late']['deadline']} (missed)" in table
    assert f"{rows['ontime']['deadline']} (missed)" not in table
    assert main(["status", "late", "--state-dir", str(tmp_path)]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert head.endswith(f"running, user {rows['late']['user']}, past its deadline "
                         f"{rows['late']['deadline']}")  # fmt: skip


def test_a_job_that_ended_past_its_deadline_shows_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3))
    executor = RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor)
    service.start(clock())
    append(
        service.queue.path, job_line(id="late", deadline="+1h") + job_line(id="ok", deadline="+1h")
    )
    service.tick(clock())
    executor.finish("ok", clock.advance(60))
    executor.finish("late", clock() + timedelta(hours=2))
    service.tick(clock())
    service.tick(clock.advance(7200))
    assert service.ledger.job("late").state == "succeeded"
    service.ledger.close()
    assert main(["status", "late", "--state-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["deadline_missed"] is True
    assert main(["status", "ok", "--state-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["deadline_missed"] is False


def test_a_restarted_daemon_reports_a_job_still_past_its_deadline_once_more(
    tmp_path: Path,
) -> None:
    """Decided (daemon/service/overdue.py): the ledger does not say whether the previous daemon saw
    the deadline pass, so a restart reports the job again, once, not at each round."""
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3))
    executor = RecordingExecutor(auto_finish=False)  # its jobs run on across the restart
    service = make_service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="late", deadline="+1h"))
    service.tick(clock())
    with capture_logs() as before:
        service.tick(clock.advance(3601))
    service.ledger.close()
    restarted = make_service(tmp_path, executor)
    with capture_logs() as after:
        restarted.start(clock())
        for _ in range(3):
            restarted.tick(clock.advance(60))
    restarted.ledger.close()
    for events in (before, after):
        assert [e["job_id"] for e in events if e["event"] == "deadline_missed"] == ["late"]
