"""The metrics endpoint, scraped over a real socket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from daemon.errors import DaemonError
from daemon.metrics import Metrics

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=(3, 10))
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_scraped_values_follow_what_the_service_records() -> None:
    clock = [NOW]
    with Metrics(clock=lambda: clock[0]) as metrics:
        port = metrics.start(0)
        metrics.observe_queue({"queued": 3, "running": 1})
        metrics.observe_decision("carbon-window", "hold", 9.0, 20.0)  # not started: no grams
        metrics.observe_decision("carbon-window", "start", 12.5, 30.0)
        metrics.observe_decision("carbon-window", "start", 2.5, None)
        metrics.observe_decision("carbon-window", "reject", None, None)
        metrics.observe_outcome("j1", "succeeded", 14.0, measured_energy_j=3.6e6)
        metrics.observe_outcome("j2", "failed", None)
        clock[0] = NOW - timedelta(minutes=3)
        metrics.observe_intensity("CA-QC", 31.0, 120.0)  # observed at NOW - 5 min
        clock[0] = NOW
        metrics.observe_step("plan", 0.25)
        metrics.observe_step("plan", 0.5, failed=True)

        got = _scrape(port)

    cw = ("policy", "carbon-window")
    assert got[("carbond_jobs", (("state", "queued"),))] == 3
    assert got[("carbond_jobs", (("state", "running"),))] == 1
    assert got[("carbond_jobs", (("state", "expired"),))] == 0
    assert got[("carbond_decisions_total", (("action", "start"), cw))] == 2
    assert got[("carbond_decisions_total", (("action", "hold"), cw))] == 1
    assert got[("carbond_decisions_total", (("action", "reject"), cw))] == 1
    assert got[("carbond_expected_emissions_grams_total", (cw,))] == 15.0
    assert got[("carbond_run_now_emissions_grams_total", (cw,))] == 30.0
    assert got[("carbond_measured_energy_joules_total", ())] == 3.6e6
    assert got[("carbond_measured_emissions_grams_total", ())] == 14.0
    assert got[("carbond_jobs_finished_total", (("state", "failed"),))] == 1
    assert got[("carbond_intensity_g_per_kwh", (("zone", "CA-QC"),))] == 31.0
    assert got[("carbond_intensity_age_seconds", (("zone", "CA-QC"),))] == 300.0
    assert got[("carbond_step_seconds_count", (("step", "plan"),))] == 2
    assert got[("carbond_step_errors_total", (("step", "plan"),))] == 1


def test_uses_its_own_registry_and_closes_its_port() -> None:
    metrics = Metrics()
    port = metrics.start(0)
    assert port > 0 and metrics.port == port
    metrics.close()
    metrics.close()  # idempotent

    assert metrics.port == 0
    assert REGISTRY.get_sample_value("carbond_decisions_total") is None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=(1, 1))


def test_a_port_in_use_is_a_clear_error() -> None:
    with Metrics() as first, Metrics() as second:
        port = first.start(0)
        with pytest.raises(DaemonError, match=f"127.0.0.1:{port}"):
            second.start(port)
