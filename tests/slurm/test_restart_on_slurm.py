"""A daemon restarted with a config that no longer has any Slurm region, while jobs it handed
to Slurm are running or held there (``make slurm-up`` first): it still follows them to their
end (``squeue``/``sacct``) and withdraws the held ones, submitting nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.assemble import Daemon, build_daemon
from daemon.executors.slurm import SlurmExecutor
from daemon.settings import RegionSettings, Settings
from tests.slurm.carbond_jobs import (
    MovableForecast,
    append_queue,
    queue_line,
    squeue_jobs,
    tick_until,
    unique_ids,
)
from tests.slurm.carbond_jobs import service as _service
from tests.slurm.cluster import SlurmCluster

service = _service  # the fixture: a service in-process (jobs owned by root), on the real Slurm

pytestmark = pytest.mark.slurm


def _without_slurm(state_dir: Path) -> Daemon:
    """The same state dir, its config's Slurm regions replaced by one simulated region."""
    region = RegionSettings(name="sim", zone="CA-QC", executor="simulated", gpus=("T4",))
    settings = Settings(state_dir=state_dir, regions=(region,), policy={"name": "run-now"},
                        intensity={"source": "static"})  # fmt: skip
    return build_daemon(settings)


def test_jobs_on_slurm_are_followed_to_their_end_after_a_restart_without_slurm_regions(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster
) -> None:
    daemon, forecast = service
    running, held = unique_ids("follow", "heldover")
    now = datetime.now(UTC)
    forecast.dip = ("CA-QC", now + timedelta(hours=1), now + timedelta(hours=2), 10.0)
    append_queue(daemon.settings.state_dir, [
        queue_line(running, ["sleep", "4"], regions=["qc"]),
        queue_line(held, ["sleep", "1"], deadline="+3h"),  # may run anywhere
    ])  # fmt: skip
    [row] = tick_until(slurm_cluster, daemon, "the job running in Slurm",
                       lambda: squeue_jobs(slurm_cluster, [running], "RUNNING"))  # fmt: skip
    [kept] = tick_until(slurm_cluster, daemon, "the planned job held in Slurm",
                        lambda: squeue_jobs(slurm_cluster, [held], "PENDING"))  # fmt: skip
    state_dir = daemon.settings.state_dir
    daemon.close()

    again = _without_slurm(state_dir)
    try:
        assert isinstance(again.executors["slurm"], SlurmExecutor)  # no region: follows only
        again.service.start(datetime.now(UTC))
        tick_until(slurm_cluster, again, "both final",
                   lambda: {again.ledger.job(j).state for j in (running, held)}.isdisjoint(
                   ("queued", "planned", "running")))  # fmt: skip
        assert again.ledger.job(running).state == "succeeded"  # its end read from sacct
        assert again.ledger.job(held).state == "succeeded", again.ledger.transitions(held)
        outcome = again.ledger.outcome(running)
        assert outcome is not None and outcome["duration_s"] >= 3  # sacct's Start and End
        assert outcome["total_g"] is None  # its region's zone and PUE are gone: and it says so
        assert "region qc" in json.loads(outcome["details_json"])["no_grams"]
        assert outcome["energy_method"] == "slurm-sacct"  # Slurm's measurement is kept
        assert outcome["measured_energy_j"] == outcome["energy_j"] > 0
        run = again.ledger.run(held)
        assert run is not None and run.executor == "simulated"
        assert slurm_cluster.job_state(int(kept["id"])).startswith("CANCELLED")  # withdrawn
        assert [r["id"] for r in squeue_jobs(slurm_cluster, [running, held])] == sorted(
            [row["id"], kept["id"]], key=int
        )  # nothing submitted again
    finally:
        again.close()
