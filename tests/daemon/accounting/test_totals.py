"""The service's running totals equal the ledger's own sums (and a restart reloads them)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from daemon.accounting.totals import add_expired
from daemon.intensity.providers import EmbeddedIntensity
from daemon.inventory import build_inventory
from daemon.ledger import Ledger
from daemon.metrics.sink import NullMetrics
from daemon.queue.ingest import Queue
from daemon.service import Service
from daemon.settings import RegionSettings, Settings
from daemon.testing import FakeClock, RecordingExecutor
from policies import get_policy
from tests.daemon.helpers import append, job_line

REGIONS = (RegionSettings(name="node", zone="CA-QC", executor="local", gpus=("A100-80GB",) * 2),)


class _Totals(NullMetrics):
    """A sink that keeps the last totals it was given."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def observe_totals(self, totals: Mapping[str, float]) -> None:
        self.last = dict(totals)


def _service(tmp_path: Path, executor: RecordingExecutor, sink: _Totals) -> Service:
    ledger = Ledger.open(tmp_path / "ledger.db")
    return Service(
        settings=Settings(state_dir=tmp_path, regions=REGIONS, policy={"name": "run-now"}),
        ledger=ledger,
        queue=Queue(tmp_path, ledger, known_regions=["node"]),
        executors={executor.name: executor},
        inventory=build_inventory(REGIONS),
        intensity=EmbeddedIntensity(),
        policy=get_policy("run-now"),
        metrics=sink,
    )


def test_running_totals_match_the_ledger_and_count_late_jobs(tmp_path: Path) -> None:
    clock, sink = FakeClock(), _Totals()
    executor = RecordingExecutor(duration_factor=3.0)  # every job runs 3x its estimate
    service = _service(tmp_path, executor, sink)
    service.start(clock())
    for n in range(4):
        deadline = "+2m" if n % 2 else "+12h"  # the short ones end past their deadline
        append(service.queue.path, job_line(id=f"j{n}", requests=32, deadline=deadline))
        service.tick(clock())
        for _ in range(20):
            service.tick(clock.advance(120))
    assert service.ledger.counts_by_state().get("succeeded") == 4
    expected = service.ledger.outcome_totals()
    assert expected["deadlines_missed"] == 2
    assert sink.last.keys() == expected.keys()
    for key, value in expected.items():
        assert sink.last[key] == pytest.approx(value), key
    service.ledger.close()

    again = _Totals()
    restarted = _service(tmp_path, executor, again)
    restarted.start(clock())
    assert again.last == pytest.approx(expected)
    restarted.ledger.close()


def test_an_expired_job_is_a_missed_deadline() -> None:
    assert add_expired({"jobs": 3.0, "deadlines_missed": 1.0}) == {
        "jobs": 3.0,
        "deadlines_missed": 2.0,
    }
