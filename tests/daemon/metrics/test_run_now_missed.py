"""carbond_run_now_emissions_grams_total, counted when a job starts, follows the report's rule
for a job run-now would have missed (its counterfactual starts at or after its deadline: it
expires waiting, its copy never runs): it adds the job's own expected grams, claiming no
saving, as its outcome row will; scraped over a real socket."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from daemon.intensity.providers import EmbeddedIntensity
from daemon.inventory import build_inventory
from daemon.ledger import Ledger
from daemon.metrics.prometheus import Metrics
from daemon.queue.ingest import Queue
from daemon.service import Service
from daemon.settings import Settings
from daemon.testing import FakeClock, RecordingExecutor
from policies import get_policy
from tests.daemon.helpers import append, job_line
from tests.daemon.run_now_busy.counterfactuals import CISO_ONLY, LONG

CW = (("policy", "carbon-window"),)


def _grams(port: int) -> tuple[float, float]:
    """(expected, run-now) gCO2e counters of carbon-window, as scraped."""
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=(3, 10))
    response.raise_for_status()
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    return (got[("carbond_expected_emissions_grams_total", CW)],
            got[("carbond_run_now_emissions_grams_total", CW)])  # fmt: skip


def test_a_started_job_run_now_would_have_missed_adds_no_saving_to_the_counters(
    tmp_path: Path,
) -> None:
    """ "x" is held for a cleaner hour on the only GPU; its copy holds that GPU ~2.5 h. "a",
    due in an hour, would start under run-now after that copy: run-now expires it. The policy
    starts it at once. The run-now counter used to add the grams of that copy (0.049 g against
    its expected 0.039 g: a saving the report and the ledger gauges never claim); it adds its
    expected grams now."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    ledger = Ledger.open(tmp_path / "ledger.db")
    with Metrics(clock=clock) as metrics:
        port = metrics.start(0)
        service = Service(
            settings=Settings(state_dir=tmp_path, regions=CISO_ONLY,
                              policy={"name": "carbon-window"}),
            ledger=ledger,
            queue=Queue(tmp_path, ledger, known_regions=["ciso"]),
            executors={executor.name: executor},
            inventory=build_inventory(CISO_ONLY),
            intensity=EmbeddedIntensity(),
            policy=get_policy("carbon-window"),
            metrics=metrics,
        )  # fmt: skip
        service.start(clock())
        append(service.queue.path, job_line(id="x", **LONG))
        service.tick(clock())
        assert service.ledger.job("x").state == "planned"
        clock.advance(60)
        append(service.queue.path, job_line(id="a", deadline="+1h"))
        service.tick(clock())
        assert service.ledger.job("a").state == "running"
        stored, job = service.ledger.counterfactual("a"), service.ledger.job("a")
        assert stored is not None and job.deadline is not None
        assert datetime.fromisoformat(stored["start"]) >= job.deadline  # run-now misses it
        expected_g, run_now_g = _grams(port)
        assert expected_g > 0 and stored["total_g"] != pytest.approx(expected_g)
        assert run_now_g == expected_g  # no saving claimed
        service.ledger.close()
