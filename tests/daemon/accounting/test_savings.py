"""Savings against the run-now counterfactual (README, "Reports"): a job that did not succeed
saves nothing, the job's own estimate error is no saving, and neither is the intensity's
forecast error (the counterfactual is priced at the intensity realised over its window)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.settings import RegionSettings
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line, make_service

ONE_T4 = (RegionSettings(name="qc", zone="CA-QC", gpus=("T4",)),)


@pytest.mark.parametrize("end", ["succeeded", "failed", "cancelled"])
def test_a_job_that_did_not_finish_its_work_saves_nothing(tmp_path: Path, end: str) -> None:
    """A long job ends after 10 s of its ~hour. Its few grams used to be counted against
    the whole run's counterfactual, a saving of ~100 % for work never done."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, regions=ONE_T4)
    service.start(clock())
    append(service.queue.path, job_line(id="a", requests=2000))
    service.tick(clock())
    clock.advance(10)
    if end == "cancelled":
        append(service.queue.path, '{"cancel": "a"}\n')
    else:
        executor.finish("a", clock(), exit_code=0 if end == "succeeded" else 3)
    service.tick(clock())
    assert service.ledger.job("a").state == end
    stored = service.ledger.counterfactual("a")
    outcome = service.ledger.outcome("a")
    assert stored is not None and outcome is not None and outcome["total_g"] > 0
    assert outcome["total_g"] < stored["total_g"] / 10  # ended early
    totals = service.ledger.outcome_totals()
    if end == "succeeded":  # the counterfactual as this (short) run turned out: no saving
        assert outcome["run_now_total_g"] < stored["total_g"] / 10
        assert abs(totals["saved_g"]) < 0.1 * outcome["total_g"]
    else:
        assert outcome["run_now_total_g"] == outcome["total_g"]
        assert totals["saved_g"] == 0
        assert totals["run_now_total_g"] == totals["total_g"]


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_the_jobs_estimate_error_is_no_saving(tmp_path: Path, factor: float) -> None:
    """Under run-now the counterfactual is the run itself: a job that runs twice (half) as
    long as estimated used to show a loss (saving) of about its whole estimate; now the
    counterfactual is scaled as the run turned out, and only the intensity's forecast error
    remains."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, regions=ONE_T4)
    service.start(clock())
    append(service.queue.path, job_line(id="a", requests=400))
    service.tick(clock())
    decision = service.ledger.latest_decision("a")
    assert decision is not None and decision.expected_duration_s is not None
    clock.advance(decision.expected_duration_s * factor)
    executor.finish("a", clock(), exit_code=0)
    service.tick(clock())
    outcome = service.ledger.outcome("a")
    stored = service.ledger.counterfactual("a")
    assert outcome is not None and stored is not None
    assert outcome["total_g"] == pytest.approx(stored["total_g"] * factor, rel=0.2)
    saved = outcome["run_now_total_g"] - outcome["total_g"]
    assert abs(saved) < 0.05 * outcome["total_g"]


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_the_counterfactual_is_priced_at_the_intensity_realised_over_its_window(
    tmp_path: Path, factor: float
) -> None:
    """The grid turns out three times dirtier than forecast over the run. Under run-now the
    counterfactual is the run itself, in the same window: it used to stay at the forecast
    while the run's grams used the realised intensity, a "loss" of two thirds of the grams;
    now it is priced from the same samples over its own window (scaled as the run), and the
    saving is 0."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, regions=ONE_T4)
    service.start(clock())
    append(service.queue.path, job_line(id="a", requests=400))
    service.tick(clock())
    decision = service.ledger.latest_decision("a")
    assert decision is not None and decision.expected_duration_s is not None
    assert decision.expected_intensity_g_per_kwh is not None
    dirty = 3 * decision.expected_intensity_g_per_kwh
    service.ledger.record_intensity("CA-QC", clock(), dirty, "test", clock())
    clock.advance(decision.expected_duration_s * factor)
    executor.finish("a", clock(), exit_code=0)
    service.tick(clock())
    outcome = service.ledger.outcome("a")
    stored = service.ledger.counterfactual("a")
    assert outcome is not None and stored is not None
    assert outcome["realised_intensity_g_per_kwh"] == pytest.approx(dirty, rel=1e-6)
    assert outcome["run_now_total_g"] > 2 * stored["total_g"] * factor
    assert outcome["run_now_total_g"] == pytest.approx(outcome["total_g"], rel=1e-9)
