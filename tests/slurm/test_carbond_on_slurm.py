"""carbond on the real local Slurm (``make slurm-up``): issue 12's must-show list.

Two regions are the cluster's two partitions: ``qc`` = ``alpha`` (node n1, 2 x T4, zone CA-QC)
and ``pace`` = ``beta`` (node n2, 2 x L4, zone US-NW-PACE). The real ``carbond run`` process is
used where the issue asks for it (placement, energy, kill -9); the other tests drive the same
service in-process with a forecast the test moves, against the same real Slurm.
"""

from __future__ import annotations

import json
import os
import pwd
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
from daemon.executors.base import LaunchSpec
from daemon.executors.slurm import SlurmExecutor, SubprocessRunner, Target
from daemon.intensity.providers import IntensityReading, ZoneSeries
from daemon.ledger import Ledger
from daemon.settings import RegionSettings, Settings, SlurmRegionSettings
from tests.slurm.cluster import SlurmCluster

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
FINAL = {"succeeded", "failed", "cancelled", "expired"}
SLEEP_S = 4  # each measured job's runtime: long enough for 5 % on whole-second sampling

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


def _line(job_id: str, command: list[str], **fields: Any) -> str:
    record = {"id": job_id, "model": "llama-1b", "requests": 4, "command": command, **fields}
    return json.dumps(record) + "\n"


def _append(state: Path, lines: Iterable[str]) -> None:
    with (state / "queue.jsonl").open("a") as out:
        out.write("".join(lines))


def _jobs(state: Path) -> dict[str, str]:
    if not (state / "ledger.db").exists():
        return {}
    with Ledger.open_readonly(state / "ledger.db") as ledger:
        return {job.job_id: job.state for job in ledger.jobs()}


def _outcomes(state: Path) -> dict[str, dict[str, Any]]:
    with Ledger.open_readonly(state / "ledger.db") as ledger:
        return {row["job_id"]: row for row in ledger.rows("outcomes")}


def _ids(*names: str) -> list[str]:
    """Job ids unique to this run (Slurm keeps earlier runs' jobs in squeue and sacct)."""
    tag = uuid.uuid4().hex[:6]
    return [f"{name}-{tag}" for name in names]


def _squeue(cluster: SlurmCluster, ids: Iterable[str], state: str = "") -> list[dict[str, str]]:
    """The Slurm jobs of carbond jobs ``ids`` (in ``state``, when given): id, name, partition,
    state, reason, start."""
    names = {f"carbond-{i}" for i in ids}  # only theirs: others' names may hold '|' or newlines
    where = f"--name={','.join(sorted(names))}"
    out = cluster.run(["squeue", "-h", "-t", "all", where, "-o", "%i|%j|%P|%T|%r|%S"]).stdout
    keys = ("id", "name", "partition", "state", "reason", "start")
    rows = [dict(zip(keys, line.split("|"), strict=True)) for line in out.splitlines()]
    return [r for r in rows if r["name"] in names and r["state"] == (state or r["state"])]


def _running(cluster: SlurmCluster, ids: Iterable[str]) -> int:
    return sum(r["state"] == "RUNNING" for r in _squeue(cluster, ids))


def _sacct_jobs(cluster: SlurmCluster, ids: Iterable[str]) -> list[dict[str, str]]:
    """Every Slurm job ever named after carbond jobs ``ids`` (one row per job)."""
    names = ",".join(f"carbond-{i}" for i in ids)
    out = cluster.run(
        ["sacct", "-a", "-X", "-n", "-P", "-S", "now-1days", "-E", "now", f"--name={names}",
         "-o", "JobID,JobName,State"]
    ).stdout  # fmt: skip
    keys = ("id", "name", "state")
    rows = [dict(zip(keys, line.split("|"), strict=True)) for line in out.splitlines()]
    return [r for r in rows if r["name"].startswith("carbond-")]


class _Daemon:
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


def _settled(cluster: SlurmCluster) -> None:
    """Both nodes idle and responding for a second (a node restarted by the fixture's reset may
    still be flagged a moment after it first answers)."""

    def idle() -> bool:
        return all(cluster.node_state(n.name) == "idle" for n in cluster.nodes)

    cluster.wait_until(lambda: idle() and (time.sleep(1) or idle()), timeout_s=60,
                       what="both nodes idle")  # fmt: skip


@pytest.fixture
def carbond(tmp_path: Path, slurm_cluster: SlurmCluster) -> Iterator[_Daemon]:
    _settled(slurm_cluster)
    daemon = _Daemon(tmp_path, slurm_cluster, CONFIG)
    daemon.start()
    yield daemon
    if daemon.proc is not None and daemon.proc.poll() is None:
        daemon.kill(signal.SIGTERM)


def _wait(cluster: SlurmCluster, what: str, predicate: Callable[[], Any], s: float = 60) -> Any:
    return cluster.wait_until(predicate, timeout_s=s, what=what)


def test_carbond_run_fills_the_cleaner_partition_spills_and_measures_energy_from_sacct(
    carbond: _Daemon, slurm_cluster: SlurmCluster
) -> None:
    watts = {"alpha": 150.0, "beta": 200.0}
    slurm_cluster.set_watts("n1", watts["alpha"])
    slurm_cluster.set_watts("n2", watts["beta"])
    ids = _ids("m0", "m1", "m2")
    _append(carbond.state, [_line(i, ["sleep", str(SLEEP_S)]) for i in ids])

    seen: dict[str, str] = {}

    def all_placed() -> bool:
        seen.update({r["name"]: r["partition"] for r in _squeue(slurm_cluster, ids)})
        return len(seen) == 3

    _wait(slurm_cluster, "3 carbond jobs in squeue", all_placed)
    # CA-QC (31 g/kWh) beats US-NW-PACE (647): two jobs fill alpha's 2 GPUs, one spills to beta
    assert sorted(seen.values()) == ["alpha", "alpha", "beta"]
    _wait(slurm_cluster, "3 jobs final",
          lambda: all(_jobs(carbond.state).get(i) in FINAL for i in ids))  # fmt: skip
    assert {i: _jobs(carbond.state)[i] for i in ids} == dict.fromkeys(ids, "succeeded")
    outcomes = _outcomes(carbond.state)
    for job_id in ids:
        row = outcomes[job_id]
        partition = seen[f"carbond-{job_id}"]
        expected_j = watts[partition] * SLEEP_S
        print(f"{job_id} {partition}: sacct {row['measured_energy_j']:.0f} J, "
              f"expected {expected_j:.0f} J, {row['duration_s']:.0f} s, "
              f"{row['total_g']:.4f} g")  # fmt: skip
        assert row["energy_method"] == "slurm-sacct"
        assert row["measured_energy_j"] == pytest.approx(expected_j, rel=0.05)
        assert row["realised_intensity_g_per_kwh"] == pytest.approx(
            31.0 if partition == "alpha" else 647.0
        )
        assert row["total_g"] > row["embodied_g"] > 0


def test_kill_9_while_slurm_jobs_run_loses_none_and_runs_none_twice(
    carbond: _Daemon, slurm_cluster: SlurmCluster
) -> None:
    ids = _ids("k0", "k1", "k2", "k3")
    marks = slurm_cluster.work_dir() / "ran"
    marks.mkdir(exist_ok=True)
    _append(carbond.state, [
        _line(i, ["sh", "-c", f"echo {i} >> {marks}/{i}; sleep 3"]) for i in ids
    ])  # fmt: skip
    time.sleep(0.4)  # maybe mid-ingest or mid-submission
    carbond.kill()
    carbond.start()
    _wait(slurm_cluster, "4 carbond jobs running in Slurm",
          lambda: _running(slurm_cluster, ids) == 4)  # fmt: skip
    carbond.kill()
    carbond.start()
    _wait(slurm_cluster, "4 jobs final",
          lambda: all(_jobs(carbond.state).get(i) in FINAL for i in ids))  # fmt: skip
    assert {i: _jobs(carbond.state)[i] for i in ids} == dict.fromkeys(ids, "succeeded")

    def counts() -> dict[str, int]:
        names = [r["name"] for r in _sacct_jobs(slurm_cluster, ids)]
        return {i: names.count(f"carbond-{i}") for i in ids}

    _wait(slurm_cluster, "sacct to list the jobs", lambda: all(counts().values()))
    assert counts() == dict.fromkeys(ids, 1)  # each submitted to Slurm exactly once
    assert {i: (marks / i).read_text() for i in ids} == {i: f"{i}\n" for i in ids}


# -- the same service in-process, with a forecast the test controls ------------------------


class _Forecast:
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
) -> Iterator[tuple[Daemon, _Forecast]]:
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    _settled(slurm_cluster)
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
        executors={"slurm": {"pending_grace_s": 60}},
    )
    forecast = _Forecast({"CA-QC": 100.0, "US-NW-PACE": 600.0})
    daemon = build_daemon(settings, intensity=forecast)
    daemon.service.start(datetime.now(UTC))
    yield daemon, forecast
    daemon.close()


def _tick(daemon: Daemon) -> None:
    daemon.service.tick(datetime.now(UTC))


def _until(cluster: SlurmCluster, daemon: Daemon, what: str, check: Callable[[], Any]) -> Any:
    def step() -> Any:
        _tick(daemon)
        return check()

    return cluster.wait_until(step, timeout_s=60, what=what)


def test_a_job_planned_for_later_waits_in_squeue_at_its_start_and_moves_with_the_forecast(
    service: tuple[Daemon, _Forecast], slurm_cluster: SlurmCluster
) -> None:
    daemon, forecast = service
    [job] = _ids("later")
    now = datetime.now(UTC)
    forecast.dip = ("CA-QC", now + timedelta(hours=1), now + timedelta(hours=2), 10.0)
    _append(daemon.settings.state_dir,
            [_line(job, ["sleep", "1"], deadline="+3h", regions=["qc"])])  # fmt: skip

    [row] = _until(
        slurm_cluster, daemon, "the job in squeue", lambda: _squeue(slurm_cluster, [job])
    )
    planned = daemon.ledger.latest_decision(job)
    assert planned is not None and planned.planned_start is not None
    assert daemon.ledger.job(job).state == "planned"
    assert (row["state"], row["reason"], row["partition"]) == ("PENDING", "BeginTime", "alpha")
    assert _at(row["start"]) == _whole(planned.planned_start)
    assert planned.planned_start >= now + timedelta(minutes=50)

    forecast.dip = ("CA-QC", now + timedelta(hours=2), now + timedelta(hours=3), 10.0)

    def moved() -> dict[str, str] | None:
        rows = _squeue(slurm_cluster, [job])
        return (
            rows[0] if rows and _at(rows[0]["start"]) >= _whole(now + timedelta(hours=2)) else None
        )

    after = _until(slurm_cluster, daemon, "the job moved in place", moved)
    assert after["id"] == row["id"]  # the same Slurm job, updated by scontrol
    replanned = daemon.ledger.latest_decision(job)
    assert replanned is not None and replanned.planned_start is not None
    assert _at(after["start"]) == _whole(replanned.planned_start)

    daemon_cli_cancel(daemon, job)
    _until(slurm_cluster, daemon, "the planned job cancelled",
           lambda: daemon.ledger.job(job).state == "cancelled")  # fmt: skip
    assert [r["state"] for r in _squeue(slurm_cluster, [job])] in ([], ["CANCELLED"])


def test_gpus_other_users_hold_are_never_planned_onto_and_cancel_reaches_slurm(
    service: tuple[Daemon, _Forecast], slurm_cluster: SlurmCluster
) -> None:
    daemon, _ = service
    hog = slurm_cluster.run_as_other_user(
        ["sbatch", "--parsable", "-p", "alpha", "--gres=gpu:2", "--wrap", "sleep 120"]
    ).stdout.strip()
    _wait(slurm_cluster, "the other user's job running",
          lambda: slurm_cluster.job_state(int(hog)) == "RUNNING")  # fmt: skip
    [job] = _ids("c1")
    _append(daemon.settings.state_dir, [_line(job, ["sleep", "60"], deadline="+20m")])

    [row] = _until(
        slurm_cluster, daemon, "c1 running", lambda: _squeue(slurm_cluster, [job], "RUNNING")
    )
    assert row["partition"] == "beta"  # alpha is cleaner, but its GPUs are someone else's
    decision = daemon.ledger.latest_decision(job)
    assert decision is not None and decision.region == "pace"

    daemon_cli_cancel(daemon, job)
    _until(
        slurm_cluster, daemon, "c1 cancelled", lambda: daemon.ledger.job(job).state == "cancelled"
    )
    _wait(slurm_cluster, "Slurm to cancel c1", lambda: slurm_cluster.job_state(int(row["id"])))
    assert slurm_cluster.job_state(int(row["id"])).startswith("CANCELLED")
    assert slurm_cluster.job_state(int(hog)) == "RUNNING"  # someone else's job untouched


def test_a_stopped_slurmd_fails_its_jobs_with_the_reason_and_carbond_plans_elsewhere(
    service: tuple[Daemon, _Forecast], slurm_cluster: SlurmCluster
) -> None:
    daemon, _ = service
    lost_id, next_id = _ids("lost", "next")
    _append(daemon.settings.state_dir, [_line(lost_id, ["sleep", "120"], deadline="+20m")])
    [row] = _until(slurm_cluster, daemon, "the job running on alpha",
                   lambda: _squeue(slurm_cluster, [lost_id], "RUNNING"))  # fmt: skip
    assert row["partition"] == "alpha"

    slurm_cluster.stop_node("n1")
    _wait(slurm_cluster, "n1 not responding", lambda: slurm_cluster.node_state("n1").endswith("*"))
    _append(daemon.settings.state_dir, [_line(next_id, ["sleep", "1"], deadline="+20m")])
    [placed] = _until(slurm_cluster, daemon, "the next job handed to Slurm",
                      lambda: _squeue(slurm_cluster, [next_id]))  # fmt: skip
    assert placed["partition"] == "beta"  # qc is cleaner, but its only node is lost
    decision = daemon.ledger.latest_decision(next_id)
    assert decision is not None and decision.region == "pace"

    _until(slurm_cluster, daemon, "the lost job failed",
           lambda: daemon.ledger.job(lost_id).state in FINAL)  # fmt: skip
    lost = daemon.ledger.run(lost_id)
    assert daemon.ledger.job(lost_id).state == "failed"
    assert lost is not None and lost.reason is not None and "NODE_FAIL" in lost.reason


def daemon_cli_cancel(daemon: Daemon, job_id: str) -> None:
    """``carbond cancel`` (the CLI process) against the in-process daemon's state."""
    env = {**os.environ, "CARBOND_STATE_DIR": str(daemon.settings.state_dir)}
    subprocess.run([sys.executable, "-m", "daemon", "cancel", job_id], cwd=REPO, env=env,
                   check=True, capture_output=True)  # fmt: skip


def _at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


def _whole(at: datetime) -> datetime:
    """``at`` as Slurm keeps a start: rounded up to the second."""
    whole = at.replace(microsecond=0)
    return whole if whole == at else whole + timedelta(seconds=1)


def test_a_job_is_submitted_as_its_owner_and_runs_as_them(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / "logs"
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=SubprocessRunner(), known_gpus=["T4"])
    [job] = _ids("owner")
    spec = LaunchSpec(job, ("sh", "-c", "id -un; pwd"), owner.pw_uid, owner.pw_gid, (0,), logs,
                      region="qc", device_ids=("qc/0",), cwd=str(logs.parent))  # fmt: skip
    handle = executor.launch(spec, datetime.now(UTC))

    [row] = _squeue(slurm_cluster, [job])
    user = slurm_cluster.run(["squeue", "-h", "-j", row["id"], "-o", "%u"]).stdout.strip()
    status = _wait(slurm_cluster, "the job to end",
                   lambda: executor.poll([handle], datetime.now(UTC)))  # fmt: skip
    assert user == slurm_cluster.user
    assert status[0].succeeded
    assert (logs / f"{job}.out").read_text().split() == [slurm_cluster.user, str(logs.parent)]
    assert (logs / f"{job}.out").stat().st_uid == owner.pw_uid


def test_a_job_name_with_a_nul_byte_runs_and_does_not_stop_the_round(
    service: tuple[Daemon, _Forecast], slurm_cluster: SlurmCluster
) -> None:
    daemon, _ = service
    odd, plain = _ids("nul", "plain")
    _append(daemon.settings.state_dir, [_line(odd, ["true"], name="a\x00b\nc", deadline="+1h"),
                                        _line(plain, ["true"], deadline="+1h")])  # fmt: skip
    _until(slurm_cluster, daemon, "both jobs final",
           lambda: all(daemon.ledger.job(j).state in FINAL for j in (odd, plain)))  # fmt: skip
    assert [daemon.ledger.job(j).state for j in (odd, plain)] == ["succeeded", "succeeded"]
    [row] = _squeue(slurm_cluster, [odd])
    shown = slurm_cluster.run(["scontrol", "-o", "show", "job", row["id"]]).stdout.split()
    assert "Comment=a?b?c" in shown
