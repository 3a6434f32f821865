"""carbond_expected_emissions_grams_total and carbond_run_now_emissions_grams_total count the
jobs started, each once: a job whose launch was never confirmed (its executor took it back
unstarted) is queued again and started again by a new ``start`` decision, which
carbond_decisions_total counts (a decision recorded), but its grams are not added again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from daemon.executors.base import ExitStatus, NotStarted, RunHandle
from daemon.intensity.providers import EmbeddedIntensity
from daemon.inventory import build_inventory
from daemon.ledger import Ledger
from daemon.metrics.prometheus import Metrics
from daemon.queue.ingest import Queue
from daemon.service import Service
from daemon.settings import RegionSettings, Settings
from daemon.testing import FakeClock, RecordingExecutor
from policies import get_policy
from tests.daemon.helpers import append, job_line

QC_ONLY = (RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("T4",)),)


class _TakesBack(RecordingExecutor):
    """Answers a poll for the jobs in ``back`` that they never started (as an executor answers
    for a launch it never confirmed), and forgets them, so that they can be launched again."""

    def __init__(self) -> None:
        super().__init__(auto_finish=False)
        self.back: set[str] = set()

    def poll(self, handles: Sequence[RunHandle], now: datetime) -> list[ExitStatus]:
        taken: list[ExitStatus] = []
        for handle in handles:
            if handle.job_id in self.back:
                del self._jobs[handle.job_id]
                taken.append(NotStarted(handle.job_id, now, None, None, "never started: back"))
        rest = [h for h in handles if h.job_id not in self.back]
        self.back.clear()
        return [*taken, *super().poll(rest, now)]


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None, name
    return value


def test_a_job_started_again_after_it_was_taken_back_adds_its_grams_once(
    tmp_path: Path,
) -> None:
    """ "a" starts; its executor says it never started: it is requeued, and started again on
    the next round. Both start decisions are recorded (two in carbond_decisions_total), but
    the grams counters used to add "a"'s expected and run-now grams a second time (twice
    what its one run is expected to emit)."""
    clock, executor = FakeClock(), _TakesBack()
    ledger = Ledger.open(tmp_path / "ledger.db")
    with Metrics(clock=clock) as metrics:
        service = Service(
            settings=Settings(state_dir=tmp_path, regions=QC_ONLY, policy={"name": "run-now"}),
            ledger=ledger,
            queue=Queue(tmp_path, ledger, known_regions=["qc"]),
            executors={executor.name: executor},
            inventory=build_inventory(QC_ONLY),
            intensity=EmbeddedIntensity(),
            policy=get_policy("run-now"),
            metrics=metrics,
        )
        service.start(clock())
        append(service.queue.path, job_line(id="a"))
        service.tick(clock())
        assert ledger.job("a").state == "running"
        expected_g = _sample(metrics, "carbond_expected_emissions_grams_total", policy="run-now")
        run_now_g = _sample(metrics, "carbond_run_now_emissions_grams_total", policy="run-now")
        assert expected_g > 0 and run_now_g > 0
        executor.back.add("a")
        service.tick(clock.advance(60))  # requeued, then started again
        assert ledger.job("a").state == "running"
        assert [spec.job_id for spec in executor.launches] == ["a", "a"]
        starts = _sample(metrics, "carbond_decisions_total", policy="run-now", action="start")
        assert starts == 2  # each decision recorded
        again = _sample(metrics, "carbond_expected_emissions_grams_total", policy="run-now")
        assert again == pytest.approx(expected_g)
        assert _sample(
            metrics, "carbond_run_now_emissions_grams_total", policy="run-now"
        ) == pytest.approx(run_now_g)
        ledger.close()
