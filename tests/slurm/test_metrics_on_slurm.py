"""What the service's Prometheus registry counts for jobs carbond holds in Slurm (``--begin``)
that never get a ``start`` decision, on the real local Slurm (``make slurm-up`` first): one
Slurm starts on its own (its grams counted once), one its owner ``scancel``s pending (counted
finished). The unit tests (tests/daemon/executors/test_held_metrics.py) fake the executor."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.assemble import Daemon
from daemon.metrics.prometheus import Metrics
from tests.slurm.carbond_jobs import (
    MovableForecast,
    append_queue,
    build_service,
    queue_line,
    squeue_jobs,
    tick,
    tick_until,
    unique_ids,
)
from tests.slurm.cluster import SlurmCluster

pytestmark = pytest.mark.slurm


@pytest.fixture
def metered(
    tmp_path: Path, slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Daemon, MovableForecast, Metrics]]:
    """The service on the real Slurm, counting in the sink ``carbond run`` gives it."""
    with Metrics() as metrics:
        daemon, forecast = build_service(tmp_path, slurm_cluster, monkeypatch, metrics)
        try:
            yield daemon, forecast, metrics
        finally:
            daemon.close()


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_held_jobs_slurm_starts_or_their_owner_cancels_are_counted_once(
    metered: tuple[Daemon, MovableForecast, Metrics], slurm_cluster: SlurmCluster
) -> None:
    daemon, forecast, metrics = metered
    started, cancelled = unique_ids("started", "cancelled")
    now = datetime.now(UTC)
    forecast.dip = ("CA-QC", now + timedelta(hours=1), now + timedelta(hours=2), 10.0)
    append_queue(daemon.settings.state_dir, [
        queue_line(job, ["sleep", "1"], deadline="+3h", regions=["qc"])
        for job in (started, cancelled)
    ])  # fmt: skip
    rows = tick_until(slurm_cluster, daemon, "both jobs held in squeue",
                      lambda: (r := squeue_jobs(slurm_cluster, [started, cancelled], "PENDING"))
                      and len(r) == 2 and r)  # fmt: skip
    slurm_id = {r["name"].removeprefix("carbond-"): r["id"] for r in rows}
    assert {daemon.ledger.job(j).state for j in (started, cancelled)} == {"planned"}
    hold = daemon.ledger.latest_decision(started, alternatives=False)
    assert hold is not None and hold.action == "hold"

    # Its owner (root, who wrote the queue line) starts one now; Slurm runs it on its own, no
    # planning round between; the other is scancelled while still pending.
    slurm_cluster.run(["scontrol", "update", f"JobId={slurm_id[started]}", "StartTime=now"])
    slurm_cluster.run(["scancel", slurm_id[cancelled]])
    slurm_cluster.wait_until(lambda: slurm_cluster.job_state(int(slurm_id[started])) != "PENDING",
                             what="Slurm to start the held job")  # fmt: skip
    tick_until(slurm_cluster, daemon, "both jobs final",
               lambda: daemon.ledger.job(started).state == "succeeded"
               and daemon.ledger.job(cancelled).state == "cancelled")  # fmt: skip
    for _ in range(3):  # later rounds count nothing more
        tick(daemon)

    policy = hold.policy
    assert _sample(metrics, "carbond_decisions_total", policy=policy, action="start") == 0
    assert _sample(metrics, "carbond_expected_emissions_grams_total", policy=policy) == (
        pytest.approx(hold.expected_total_g)
    )  # the started job's, once; none for the cancelled one
    assert hold.run_now_total_g is not None
    assert _sample(metrics, "carbond_run_now_emissions_grams_total", policy=policy) == (
        pytest.approx(hold.run_now_total_g)
    )
    assert _sample(metrics, "carbond_jobs_finished_total", state="cancelled") == 1
    assert _sample(metrics, "carbond_jobs_finished_total", state="succeeded") == 1
