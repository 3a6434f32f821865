"""The service's intensity refresh (``daemon.service.refresh``): what it tells the operator
about a zone's signal beyond the metrics."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
from structlog.testing import capture_logs

from daemon.assemble import build_daemon, rebuild_service
from daemon.assemble_service import build_service
from daemon.ledger import Ledger
from daemon.settings import RegionSettings, Settings
from daemon.testing import FakeClock, RecordingExecutor
from forecasts import IntensitySeries, SeriesCache, SignalChain

REGIONS = (
    RegionSettings(name="de", zone="DE", executor="local", gpus=("T4",)),
    RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("T4",)),
)


def test_a_tokenless_daemon_on_a_months_old_history_says_so_once(tmp_path: Path) -> None:
    """No token and a trace (or cache) whose newest point is 90 days old: the chain plans on
    the static value. Until 2026-12-08 only the rung metric said so: no failure counted
    without a provider, so no health problem and no log line. A zone with no history at all
    (CA-QC here, the demo's case) is a normal tokenless daemon and says nothing."""
    clock = FakeClock()
    newest = clock().replace(minute=0, second=0, microsecond=0) - timedelta(days=90)
    old = IntensitySeries("DE", newest - timedelta(hours=23), 3600, np.full(24, 300.0))
    chain = SignalChain(traces={"DE": old})
    settings = Settings(state_dir=tmp_path, regions=REGIONS, policy={"name": "run-now"})
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        service = build_service(settings, ledger, {"local": RecordingExecutor()}, intensity=chain)
        service.start(clock())
        with capture_logs() as events:
            for _ in range(3):  # three refreshes
                service.tick(clock())
                clock.advance(settings.intervals.refresh_s)
        problems = service.health.problems(clock())
        service.close()
    stale = [e for e in events if e["event"] == "intensity_history_stale"]
    assert [(e["zone"], e["newest_at"]) for e in stale] == [("DE", newest.isoformat())]
    assert stale[0]["rung"] == "static"
    assert "intensity:CA-QC" not in problems
    message = problems["intensity:DE"]
    assert f"history too old: its newest point is for {newest.isoformat()}" in message
    assert "planning on the static rung" in message


def test_a_reload_does_not_log_the_same_stale_history_again(tmp_path: Path) -> None:
    """``intensity_history_stale`` is logged once per newest point; a reload (SIGHUP) hands
    the service's memory of what it logged to the new one, as it hands over the overdue
    runs already reported. Until 2026-12-08 each reload logged it again."""
    clock = FakeClock()
    newest = clock().replace(minute=0, second=0, microsecond=0) - timedelta(days=90)
    SeriesCache(tmp_path / "cache" / "intensity").store(
        IntensitySeries("DE", newest - timedelta(hours=23), 3600, np.full(24, 300.0))
    )
    region = RegionSettings(name="de", zone="DE", executor="simulated", gpus=("T4",))
    settings = Settings(state_dir=tmp_path, regions=(region,), policy={"name": "run-now"},
                        gpu={"backend": "simulated"})  # fmt: skip
    daemon = build_daemon(settings, executors={"simulated": RecordingExecutor("simulated")},
                          gpu_clock=clock.monotonic())  # fmt: skip
    try:
        daemon.service.start(clock())
        with capture_logs() as events:
            daemon.service.tick(clock())
            service = rebuild_service(daemon, settings, None)  # SIGHUP
            for _ in range(2):  # the reload's refresh at once, then the next one
                service.tick(clock.advance(settings.intervals.refresh_s))
        problems = service.health.problems(clock())
    finally:
        daemon.close()
    stale = [e for e in events if e["event"] == "intensity_history_stale"]
    assert [(e["zone"], e["newest_at"]) for e in stale] == [("DE", newest.isoformat())]
    assert "history too old" in problems["intensity:DE"]
