"""What the running daemon says of its sites in ``health.json`` (``carbond doctor``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon.settings import SiteSettings
from daemon.supervision.health import HEALTH_NAME, read_health
from daemon.testing import FakeClock
from tests.daemon.helpers import append, job_line
from tests.daemon.sites.site_service import site_service

NIGHT = datetime(2024, 6, 1, 5, tzinfo=UTC)


def test_a_stale_or_failing_site_is_a_problem_doctor_shows(tmp_path: Path) -> None:
    """A stale measured PV CSV was only a log line: ``health.json`` (what ``carbond doctor``
    shows of the running daemon) said nothing while planners and outcomes used its last row."""
    pv = tmp_path / "pv.csv"
    rows = [f"{(NIGHT - timedelta(hours=30 - h)).isoformat()},0\n" for h in range(24)]
    pv.write_text("datetime,power_w\n" + "".join(rows))  # ends 6 h before NIGHT
    clock = FakeClock(NIGHT)
    service, _ = site_service(tmp_path, SiteSettings(pv_csv=pv))
    service.start(clock())
    append(service.queue.path, job_line(id="a", model="llama-3.1-8b"))
    service.tick(clock())
    service.after_step("plan", None, clock())
    report = read_health(tmp_path / HEALTH_NAME)
    assert report is not None and "site:node" in report.problems
    assert "pv_csv" in report.problems["site:node"] and "pv.csv" in report.problems["site:node"]
    rows = [f"{(NIGHT - timedelta(hours=30 - h)).isoformat()},0\n" for h in range(40)]
    pv.write_text("datetime,power_w\n" + "".join(rows))  # measured up to now again
    clock.advance(60)
    append(service.queue.path, job_line(id="b", model="llama-3.1-8b"))
    service.tick(clock())
    service.after_step("plan", None, clock())
    report = read_health(tmp_path / HEALTH_NAME)
    assert report is not None and "site:node" not in report.problems
    service.ledger.close()
