"""The ``carbond_ledger_*`` gauges across a SIGHUP reload: the ledger's sums, each job once."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from daemon.assemble import build_daemon, rebuild_service
from daemon.metrics.prometheus import Metrics
from daemon.settings import RegionSettings, Settings
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line


def _settings(tmp_path: Path) -> Settings:
    region = RegionSettings(name="sim", zone="CA-QC", executor="simulated", gpus=("T4",))
    return Settings(state_dir=tmp_path, regions=(region,), policy={"name": "run-now"},
                    gpu={"backend": "simulated"})  # fmt: skip


def _ledger_gauges(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=(3, 10)).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("carbond_ledger_")
    }


def test_a_job_that_ends_after_a_reload_is_counted_once(tmp_path: Path) -> None:
    """After `systemctl reload carbond` the rebuilt service had no running totals: the first
    job to end read them from the ledger, which had its outcome row already, then added
    that row again. On the walkthrough's daemon carbond_ledger_jobs said 37 over a ledger
    of 36 outcomes, and the estimated energy counted the first job after the reload twice;
    a job that expired after a reload counted twice as a missed deadline too."""
    clock = FakeClock()
    executor = RecordingExecutor("simulated")
    with Metrics(clock=clock) as metrics:
        port = metrics.start(0)
        daemon = build_daemon(_settings(tmp_path), metrics=metrics,
                              executors={"simulated": executor},
                              gpu_clock=clock.monotonic())  # fmt: skip
        try:
            daemon.service.start(clock())
            append(daemon.service.queue.path, job_line(id="before", requests=8))
            daemon.service.tick(clock())
            clock.advance(3600)
            assert daemon.service.tick(clock()).finished == ("before",)
            service = rebuild_service(daemon, _settings(tmp_path), metrics)  # SIGHUP
            append(service.queue.path, job_line(id="hog", requests=4000))
            service.tick(clock.advance(1))  # "hog" holds the one T4...
            append(service.queue.path, job_line(id="late", requests=8, deadline="+10s"))
            service.tick(clock.advance(1))
            service.tick(clock.advance(60))  # ...so "late" waits past its deadline
            assert daemon.ledger.job("late").state == "expired"
            service = rebuild_service(daemon, _settings(tmp_path), metrics)  # SIGHUP again
            clock.advance(86_400)
            assert service.tick(clock()).finished == ("hog",)
            got = _ledger_gauges(port)
            totals = daemon.ledger.outcome_totals()
            states = daemon.ledger.counts_by_state()
        finally:
            daemon.close()
    assert states == {"succeeded": 2, "expired": 1}
    assert got[("carbond_ledger_jobs", ())] == totals["jobs"]
    energy = sum(v for (name, _), v in got.items() if name == "carbond_ledger_energy_joules")
    assert energy == pytest.approx(totals["energy_j"])
    total_g = got[("carbond_ledger_emissions_grams", (("part", "total"),))]
    assert total_g == pytest.approx(totals["total_g"])
    assert got[("carbond_ledger_deadlines_missed", ())] == totals["deadlines_missed"]
