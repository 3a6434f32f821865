"""What the tests of carbond on the real local Slurm share (``tests/slurm/test_*_on_slurm.py``).

A queue line and its append, the ledger's job states and outcomes, job ids unique to a run, the
Slurm jobs of carbond jobs in ``squeue``, ``carbond run`` as a process (``CarbondProcess``), and
the service in-process (the ``service`` fixture) with a forecast the test moves
(``MovableForecast``), stepped by ``tick`` / ``tick_until``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daemon.assemble import Daemon, build_daemon
from daemon.intensity.providers import IntensityReading, ZoneSeries
from daemon.ledger import Ledger
from daemon.metrics.sink import MetricsSink
from daemon.settings import RegionSettings, Settings, SlurmRegionSettings
from tests.slurm.cluster import SlurmCluster

REPO = Path(__file__).resolve().parents[2]


FINAL = {"succeeded", "failed", "cancelled", "expired"}


CONFIG = """
state_dir = "{state}"
[policy]
name = "spatial"
[intensity]
source = "static"
[intervals]
ingest_s = 0.1
plan_s = 0.3
reconcile_s = 0.3
[metrics]
port = 0
[log]
format = "json"
[executors.slurm]
pending_grace_s = 60
[[regions]]
name = "qc"
zone = "CA-QC"
executor = "slurm"
[regions.slurm]
partition = "alpha"
[[regions]]
name = "pace"
zone = "US-NW-PACE"
executor = "slurm"
[regions.slurm]
partition = "beta"
"""


def queue_line(job_id: str, command: list[str], **fields: Any) -> str:
    record = {"id": job_id, "model": "llama-1b", "requests": 4, "command": command, **fields}
    return json.dumps(record) + "\n"


def append_queue(state: Path, lines: Iterable[str]) -> None:
    with (state / "queue.jsonl").open("a") as out:
        out.write("".join(lines))


def ledger_states(state: Path) -> dict[str, str]:
    if not (state / "ledger.db").exists():
        return {}
    with Ledger.open_readonly(state / "ledger.db") as ledger:
        return {job.job_id: job.state for job in ledger.jobs()}


def ledger_outcomes(state: Path) -> dict[str, dict[str, Any]]:
    with Ledger.open_readonly(state / "ledger.db") as ledger:
        return {row["job_id"]: row for row in ledger.rows("outcomes")}


def unique_ids(*names: str) -> list[str]:
    """Job ids unique to this run (Slurm keeps earlier runs' jobs in squeue and sacct)."""
    tag = uuid.uuid4().hex[:6]
    return [f"{name}-{tag}" for name in names]


def squeue_jobs(cluster: SlurmCluster, ids: Iterable[str], state: str = "") -> list[dict[str, str]]:
    """The Slurm jobs of carbond jobs ``ids`` (in ``state``, when given): id, name, partition,
    state, reason, start."""
    names = {f"carbond-{i}" for i in ids}  # only theirs: others' names may hold '|' or newlines
    where = f"--name={','.join(sorted(names))}"
    out = cluster.run(["squeue", "-h", "-t", "all", where, "-o", "%i|%j|%P|%T|%r|%S"]).stdout
    keys = ("id", "name", "partition", "state", "reason", "start")
    rows = [dict(zip(keys, line.split("|"), strict=True)) for line in out.splitlines()]
    return [r for r in rows if r["name"] in names and r["state"] == (state or r["state"])]


class CarbondProcess:
    """``carbond run`` as a process (started, killed, restarted)."""

    def __init__(self, tmp: Path, cluster: SlurmCluster, config: str) -> None:
        self.state = tmp / "state"
        self.state.mkdir()
        self.config = tmp / "carbond.toml"
        self.config.write_text(config.format(state=self.state))
        self.log = tmp / "daemon.log"
        self.env = {**os.environ, "SLURM_CONF": str(cluster.slurm_conf), "TZ": "UTC"}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "daemon", "run", "--config", str(self.config)],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=self.env,
            )  # fmt: skip

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)

    def cli(self, *args: str) -> str:
        argv = [sys.executable, "-m", "daemon", *args, "--config", str(self.config)]
        return subprocess.run(
            argv, cwd=REPO, env=self.env, capture_output=True, text=True, check=True
        ).stdout


RESTARTED_S = 5  # a slurmd younger than this may have been restarted by the fixture's reset


def settled(cluster: SlurmCluster) -> None:
    """Both nodes idle and responding; for a second when a node's slurmd started under
    :data:`RESTARTED_S` ago (restarted by the fixture's reset, it may still be flagged a moment
    after it first answers). The other tests do not wait that second: their nodes ran on."""

    def idle() -> bool:
        return all(cluster.node_state(n.name) == "idle" for n in cluster.nodes)

    def steady() -> bool:
        fresh = any(cluster.slurmd_up_s(n.name) < RESTARTED_S for n in cluster.nodes)
        return idle() and (not fresh or (time.sleep(1) or idle()))

    cluster.wait_until(steady, timeout_s=60, what="both nodes idle")


def wait_for(cluster: SlurmCluster, what: str, predicate: Callable[[], Any], s: float = 60) -> Any:
    return cluster.wait_until(predicate, timeout_s=s, what=what)


class MovableForecast:
    """Flat intensity per zone, with an optional low window the test moves."""

    def __init__(self, base: dict[str, float]) -> None:
        self.base = base
        self.dip: tuple[str, datetime, datetime, float] | None = None

    def refresh(self, zones: Iterable[str], now: datetime) -> None:
        return None

    def _value(self, zone: str, at: datetime) -> float:
        if self.dip is not None and self.dip[0] == zone and self.dip[1] <= at < self.dip[2]:
            return self.dip[3]
        return self.base[zone]

    def forecast(self, zone: str, now: datetime, horizon_s: int, step_s: int) -> ZoneSeries:
        epoch = now.timestamp()
        start = datetime.fromtimestamp(epoch - epoch % step_s, UTC)
        times = [start + timedelta(seconds=k * step_s) for k in range(horizon_s // step_s)]
        values = np.array([self._value(zone, t) for t in times], dtype=np.float64)
        return ZoneSeries(zone, start, step_s, values, "test")

    def current(self, zone: str, now: datetime) -> IntensityReading:
        return IntensityReading(zone, now, self._value(zone, now), "test")


@pytest.fixture
def service(
    tmp_path: Path, slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Daemon, MovableForecast]]:
    daemon, forecast = build_service(tmp_path, slurm_cluster, monkeypatch)
    yield daemon, forecast
    daemon.close()


def build_service(
    tmp_path: Path,
    slurm_cluster: SlurmCluster,
    monkeypatch: pytest.MonkeyPatch,
    metrics: MetricsSink | None = None,
) -> tuple[Daemon, MovableForecast]:
    """The service in-process on the real Slurm (regions qc and pace), started; counting in
    ``metrics`` where given (the sink ``carbond run`` gives it, its registry readable)."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    settled(slurm_cluster)
    regions = tuple(
        RegionSettings(
            name=name, zone=zone, executor="slurm", slurm=SlurmRegionSettings(partition=partition)
        )
        for name, zone, partition in (("qc", "CA-QC", "alpha"), ("pace", "US-NW-PACE", "beta"))
    )
    settings = Settings(
        state_dir=tmp_path / "state",
        regions=regions,
        policy={"name": "carbon-window"},
        intensity={"source": "static", "horizon_s": 4 * 3600, "step_s": 600},
        intervals={"refresh_s": 0.01},
        # a hung slurmdbd's sacct waits 2 s, not the default 10 (test_accounting_on_slurm.py),
        # as the executor tests' SubprocessRunner(accounting_timeout_s=2)
        executors={"slurm": {"pending_grace_s": 60, "accounting_timeout_s": 2}},
    )
    forecast = MovableForecast({"CA-QC": 100.0, "US-NW-PACE": 600.0})
    daemon = build_daemon(settings, intensity=forecast, metrics=metrics)
    daemon.service.start(datetime.now(UTC))
    return daemon, forecast


def tick(daemon: Daemon) -> None:
    daemon.service.tick(datetime.now(UTC))


def tick_until(cluster: SlurmCluster, daemon: Daemon, what: str, check: Callable[[], Any]) -> Any:
    def step() -> Any:
        tick(daemon)
        return check()

    return cluster.wait_until(step, timeout_s=60, what=what)


def daemon_cli_cancel(daemon: Daemon, job_id: str) -> None:
    """``carbond cancel`` (the CLI process) against the in-process daemon's state."""
    env = {**os.environ, "CARBOND_STATE_DIR": str(daemon.settings.state_dir)}
    subprocess.run([sys.executable, "-m", "daemon", "cancel", job_id], cwd=REPO, env=env,
                   check=True, capture_output=True)  # fmt: skip
