"""The metrics endpoint, scraped over a real socket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from daemon.errors import DaemonError
from daemon.intensity.providers import EmbeddedIntensity
from daemon.inventory import build_inventory
from daemon.ledger import Ledger
from daemon.metrics.prometheus import Metrics
from daemon.queue.ingest import Queue
from daemon.service import Service
from daemon.settings import GpuSettings, RegionSettings, Settings
from daemon.states import FINAL_STATES
from daemon.supervision.loop import STEP_NAMES
from daemon.testing import FakeClock, RecordingExecutor
from policies import get_policy
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.helpers import append, job_line

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
        metrics.observe_intensity("DE", 367.0, 0.0, "cache")
        metrics.observe_intensity("DE", 367.0, 0.0, "static")  # one rung a zone: the latest
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
    rungs = {key[1]: value for key, value in got.items() if key[0] == "carbond_intensity_rung"}
    assert rungs == {
        (("rung", "live"), ("zone", "CA-QC")): 1,
        (("rung", "static"), ("zone", "DE")): 1,
    }
    assert got[("carbond_intensity_age_seconds", (("zone", "CA-QC"),))] == 300.0
    assert got[("carbond_step_seconds_count", (("step", "plan"),))] == 2
    assert got[("carbond_step_errors_total", (("step", "plan"),))] == 1


def test_the_configured_source_is_exported_next_to_the_rung() -> None:
    """``[intensity] source = "static"`` exports the rung ``static`` on purpose, as the chain
    does when it falls back: CarbondSignalStatic told them apart by the configured source.
    One source at a time: a reload's replaces the previous one."""
    with Metrics() as metrics:
        port = metrics.start(0)
        metrics.observe_source("static")
        metrics.observe_intensity("DE", 367.0, 0.0, "static")
        before = _scrape(port)
        metrics.observe_source("chain")
        after = _scrape(port)

    def sources(got: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
        return {dict(k[1])["source"]: v for k, v in got.items()
                if k[0] == "carbond_intensity_source"}  # fmt: skip

    assert sources(before) == {"static": 1}
    assert sources(after) == {"chain": 1}


def test_known_labels_are_scraped_at_0_before_their_first_count() -> None:
    """Prometheus' increase() and rate() count nothing for a series' first sample: a step's
    error series born at 1 loses its first error (4 errors in 15 minutes read as 3.375 and
    CarbondStepErrors said "raised 3.375 times"), a state's first finished job is not in the
    dashboard's rate. Every step and final state has its series at 0 from the start."""
    with Metrics() as metrics:
        got = _scrape(metrics.start(0))

    for step in STEP_NAMES:
        assert got[("carbond_step_errors_total", (("step", step),))] == 0, step
    for state in FINAL_STATES:
        assert got[("carbond_jobs_finished_total", (("state", state),))] == 0, state


def test_help_texts_say_what_docs_metrics_md_says() -> None:
    """Grafana's metric browser shows HELP: carbond_measured_emissions_grams_total counts the
    grams of every finished job, its energy metered or estimated (not "Measured gCO2e"); the
    run-now grams are the counterfactual stored with each job's first decision."""
    with Metrics() as metrics:
        port = metrics.start(0)
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=(3, 10)).text
    helps = {f.name: f.documentation for f in text_string_to_metric_families(text)}

    measured = helps["carbond_measured_emissions_grams"]
    assert "estimated" in measured and not measured.startswith("Measured"), measured
    assert "first decision" in helps["carbond_run_now_emissions_grams"]
    # one series, the configured source's, at 1: "1 for the one in use" read as if the other
    # sources were exported at 0 (docs/metrics.md, eca8576f, says they have no series)
    source = helps["carbond_intensity_source"]
    assert "one in use" not in source and "one series" in source, source
    assert "no series" in source, source


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


def _service(
    tmp_path: Path, metrics: Metrics, executor: RecordingExecutor, clock: FakeClock
) -> Service:
    from daemon.gpu import GpuMonitor, SimulatedGpuBackend
    from daemon.gpu.factory import simulated_spec
    from daemon.measurement import JobMeasurement

    def monotonic_s() -> float:
        return (clock() - NOW).total_seconds()

    backend = SimulatedGpuBackend(
        [simulated_spec(DEFAULT_GPU_CATALOG.get("A100-80GB"))], clock=monotonic_s
    )
    backend.start()
    monitor = GpuMonitor(backend, GpuSettings(), clock=backend.now_s, sample=False)
    regions = (RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("A100-80GB",)),)
    ledger = Ledger.open(tmp_path / "ledger.db")
    service = Service(
        settings=Settings(state_dir=tmp_path, regions=regions, policy={"name": "carbon-window"}),
        ledger=ledger,
        queue=Queue(tmp_path, ledger, known_regions=["qc"]),
        executors={executor.name: executor},
        inventory=build_inventory(regions),
        intensity=EmbeddedIntensity(),
        policy=get_policy("carbon-window"),
        metrics=metrics,
        measurement=JobMeasurement(monitor, lifetime_years=5.0, index_of={"qc/0": 0}),
    )
    service.start(clock())
    return service


def test_measured_energy_and_ledger_totals_reach_the_endpoint_and_survive_a_restart(
    tmp_path: Path,
) -> None:
    """Issue 14 item 3: the measured-energy counter grows with the emissions counter, and the
    ledger gauges (totals, savings) come back after a restart while counters start at 0."""
    executor, clock = RecordingExecutor(), FakeClock(NOW)
    with Metrics(clock=clock) as metrics:
        port = metrics.start(0)
        service = _service(tmp_path, metrics, executor, clock)
        append(service.queue.path, job_line(id="a", model="llama-3.1-8b", requests=64))
        service.tick(clock())
        decision = service.ledger.latest_decision("a")
        assert decision is not None and decision.expected_duration_s
        clock.advance(decision.expected_duration_s + 1)
        assert service.tick(clock()).finished == ("a",)
        outcome = service.ledger.outcome("a")
        assert outcome is not None and outcome["measured_energy_j"] > 0
        got = _scrape(port)
        service.ledger.close()
    assert got[("carbond_measured_energy_joules_total", ())] == pytest.approx(
        outcome["measured_energy_j"]
    )
    assert got[("carbond_measured_emissions_grams_total", ())] == pytest.approx(outcome["total_g"])
    ledger_g = got[("carbond_ledger_emissions_grams", (("part", "total"),))]
    assert ledger_g == pytest.approx(outcome["total_g"])
    saved = outcome["run_now_total_g"] - outcome["total_g"]
    assert got[("carbond_ledger_saved_grams", ())] == pytest.approx(saved)

    with Metrics(clock=clock) as metrics:  # the daemon restarts
        port = metrics.start(0)
        service = _service(tmp_path, metrics, executor, clock)
        again = _scrape(port)
        service.ledger.close()
    assert ("carbond_measured_energy_joules_total", ()) not in again or again[
        ("carbond_measured_energy_joules_total", ())
    ] == 0
    assert again[("carbond_ledger_emissions_grams", (("part", "total"),))] == pytest.approx(
        ledger_g
    )
    assert again[("carbond_ledger_saved_grams", ())] == pytest.approx(saved)
    assert again[("carbond_ledger_energy_joules", (("source", "measured"),))] == pytest.approx(
        outcome["measured_energy_j"]
    )
    assert again[("carbond_ledger_jobs", ())] == 1


def test_a_zone_a_reload_removed_leaves_the_intensity_metrics(tmp_path: Path) -> None:
    """A SIGHUP rebuilds the service around the same endpoint: a zone no region uses any more
    is no longer exported (its age grew for ever and fired CarbondSignalStale 3 h later)."""
    clock = FakeClock(NOW)
    with Metrics(clock=clock) as metrics:
        port = metrics.start(0)
        before = _service(tmp_path, metrics, RecordingExecutor(), clock)
        before.refresh_intensity(clock())
        assert _scrape(port)[("carbond_intensity_age_seconds", (("zone", "CA-QC"),))] == 0
        before.ledger.close()

        regions = (RegionSettings(name="pace", zone="US-NW-PACE", executor="local",
                                  gpus=("A100-80GB",)),)  # fmt: skip
        ledger = Ledger.open(tmp_path / "ledger.db")
        after = Service(
            settings=Settings(state_dir=tmp_path, regions=regions),
            ledger=ledger,
            queue=Queue(tmp_path, ledger, known_regions=["pace"]),
            executors={"recording": RecordingExecutor()},
            inventory=build_inventory(regions),
            intensity=EmbeddedIntensity(),
            policy=get_policy("carbon-window"),
            metrics=metrics,
        )
        clock.advance(3600)
        after.refresh_intensity(clock())
        got = _scrape(port)
        ledger.close()
    zones = {dict(labels).get("zone") for (name, labels) in got if "intensity" in name}
    assert zones == {"US-NW-PACE"}


def test_ledger_gauges_are_absent_until_the_ledger_totals_are_read() -> None:
    """The endpoint listens before the service reads the ledger (a start re-adopts runs
    first): a scrape then has no ledger gauges, not zeros (a dip to 0 of the deadline count
    reads as that many new misses, and the dashboard's totals drop to 0)."""
    with Metrics() as metrics:
        port = metrics.start(0)
        before = _scrape(port)
        metrics.observe_totals({"jobs": 4.0, "deadlines_missed": 2.0, "saved_g": 1.5})
        after = _scrape(port)
    assert not [name for name, _ in before if name.startswith("carbond_ledger_")]
    assert after[("carbond_ledger_jobs", ())] == 4
    assert after[("carbond_ledger_deadlines_missed", ())] == 2
    assert after[("carbond_ledger_saved_grams", ())] == 1.5
    assert after[("carbond_ledger_emissions_grams", (("part", "total"),))] == 0


def test_a_rejected_job_counts_as_finished_failed(tmp_path: Path) -> None:
    """A job the policy rejects (it fits no GPU) is failed in the ledger, and in
    ``carbond jobs`` and the ``carbond_jobs{state="failed"}`` gauge, but
    ``carbond_jobs_finished_total{state="failed"}`` did not count it: a dashboard's failure
    rate missed every rejection. Every final state reached counts, whatever the path."""
    executor, clock = RecordingExecutor(), FakeClock(NOW)
    with Metrics(clock=clock) as metrics:
        port = metrics.start(0)
        service = _service(tmp_path, metrics, executor, clock)
        append(service.queue.path, job_line(id="huge", model="llama-3.1-70b", requests=4))
        service.tick(clock())
        assert service.ledger.job("huge").state == "failed"
        got = _scrape(port)
        service.ledger.close()
    cw = ("policy", "carbon-window")
    assert got[("carbond_decisions_total", (("action", "reject"), cw))] == 1
    assert got[("carbond_jobs", (("state", "failed"),))] == 1
    assert got[("carbond_jobs_finished_total", (("state", "failed"),))] == 1
