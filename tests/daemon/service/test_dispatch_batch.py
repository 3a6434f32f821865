"""A round's dispatches are written ahead in one transaction, and a reconcile's endings are
committed in one: a daemon killed while several of them are pending launches each job exactly
once and records each end exactly once after its restart (a real SIGKILL at the named kill
points, in a child process)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.executors.base import ExitStatus, LaunchSpec, NotStarted, RunHandle
from daemon.intensity.providers import EmbeddedIntensity
from daemon.inventory import build_inventory
from daemon.killpoints import ENV
from daemon.ledger import Ledger
from daemon.queue.ingest import Queue
from daemon.service import Service
from daemon.settings import RegionSettings, Settings
from policies import get_policy
from tests.daemon.helpers import append, job_line

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2024, 6, 1, tzinfo=UTC)
THREE_T4 = (RegionSettings(name="qc", zone="CA-QC", gpus=("T4", "T4", "T4")),)
JOBS = ("a", "b", "c")


class FileExecutor:
    """Launches by appending the job id to ``launched.log`` (the only trace a launch leaves,
    as a process would); a job ends ``RUN_S`` after its launch. ``adopt`` finds a job without
    a token in that file, as a real executor finds its process."""

    name = "local"

    def __init__(self, state_dir: Path) -> None:
        self.log = state_dir / "launched.log"

    def launched(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []

    def launch(self, spec: LaunchSpec, now: datetime) -> RunHandle:
        with self.log.open("a") as out:
            out.write(spec.job_id + "\n")
        return RunHandle(spec.job_id, self.name, f"file-{spec.job_id}", now)

    def poll(self, handles: Sequence[RunHandle], now: datetime) -> list[ExitStatus]:
        return [s for s in (_ended(h, now) for h in handles) if s is not None]

    def cancel(self, handle: RunHandle, now: datetime) -> None:
        return None

    def adopt(self, handles: Sequence[RunHandle], now: datetime) -> list[RunHandle | ExitStatus]:
        launched = set(self.launched())
        return [
            _ended(h, now) or RunHandle(h.job_id, self.name, f"file-{h.job_id}", h.started_at)
            if h.token or h.job_id in launched
            else NotStarted(h.job_id, now, None, None, "never started")
            for h in handles
        ]


RUN_S = 30.0


def _ended(handle: RunHandle, now: datetime) -> ExitStatus | None:
    end = handle.started_at + timedelta(seconds=RUN_S)
    return ExitStatus(handle.job_id, end, 0) if end <= now else None


def _service(state_dir: Path) -> Service:
    ledger = Ledger.open(state_dir / "ledger.db")
    return Service(
        settings=Settings(state_dir=state_dir, regions=THREE_T4, policy={"name": "run-now"}),
        ledger=ledger,
        queue=Queue(state_dir, ledger, known_regions=["qc"]),
        executors={"local": FileExecutor(state_dir)},
        inventory=build_inventory(THREE_T4),
        intensity=EmbeddedIntensity(),
        policy=get_policy("run-now"),
    )


def crash_in_one_round(state_dir: str) -> None:
    """The child: three jobs planned and dispatched in one round (killed on the way)."""
    service = _service(Path(state_dir))
    service.start(NOW)
    append(service.queue.path, "".join(job_line(id=j, gpu_types=["T4"]) for j in JOBS))
    service.tick(NOW)


def crash_while_ending(state_dir: str) -> None:
    """The child: three jobs dispatched in one round, then their ends (killed on the way)."""
    crash_in_one_round(state_dir)
    service = _service(Path(state_dir))
    service.start(NOW + timedelta(seconds=1))
    service.tick(NOW + timedelta(seconds=60))


def _kill(function: str, state_dir: Path, point: str) -> None:
    child = subprocess.run(
        [sys.executable, "-c", "import sys; from tests.daemon.service.test_dispatch_batch import "
         f"{function} as f; f(sys.argv[1])", str(state_dir)],
        cwd=REPO, env={**os.environ, ENV: point}, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert child.returncode == -9, child.stderr


@pytest.mark.parametrize(
    ("point", "launched_before_restart"),
    [
        ("dispatch_launch:1", []),  # every row committed, nothing launched
        ("dispatch_launch:2", ["a"]),  # one launched, its handle lost with the others' rows
        ("dispatch_handle:2", ["a", "b"]),  # two launched, no handle recorded
        ("dispatch_handle:3", ["a", "b", "c"]),  # all launched, the handles' commit not reached
    ],
)
def test_a_kill_with_several_dispatches_pending_launches_each_job_once(
    tmp_path: Path, point: str, launched_before_restart: list[str]
) -> None:
    _kill("crash_in_one_round", tmp_path, point)
    executor = FileExecutor(tmp_path)
    assert executor.launched() == launched_before_restart
    with Ledger.open_readonly(tmp_path / "ledger.db") as ledger:
        runs = {job_id: ledger.run(job_id) for job_id in JOBS}
        assert all(run is not None and run.token is None for run in runs.values())  # written ahead
        assert {j.state for j in ledger.jobs()} == {"running"}
    service = _service(tmp_path)
    service.start(NOW + timedelta(seconds=5))  # adopts the launched jobs, requeues the others
    states = {job.job_id: job.state for job in service.ledger.jobs()}
    assert states == {j: "running" if j in launched_before_restart else "queued" for j in JOBS}
    service.tick(NOW + timedelta(seconds=10))
    assert sorted(executor.launched()) == list(JOBS)  # each exactly once
    assert all((run := service.ledger.run(j)) is not None and run.token for j in JOBS)
    service.ledger.close()


@pytest.mark.parametrize(
    ("point", "ended_before_restart"),
    [
        ("reconcile_polled:2", 0),  # three ends reported (the 1st poll: none), none recorded
        ("job_exit:2", 0),  # two outcome rows computed, nothing committed
        ("job_exit:3", 0),
        ("job_exit_done:1", 3),  # the three ends committed together
    ],
)
def test_a_kill_with_several_endings_pending_records_each_end_once(
    tmp_path: Path, point: str, ended_before_restart: int
) -> None:
    _kill("crash_while_ending", tmp_path, point)
    with Ledger.open_readonly(tmp_path / "ledger.db") as ledger:
        states = [job.state for job in ledger.jobs()]
        assert states.count("succeeded") == ended_before_restart
        assert states.count("running") == len(JOBS) - ended_before_restart
    service = _service(tmp_path)
    service.start(NOW + timedelta(seconds=90))  # the ended runs are found ended and recorded
    assert {job.state for job in service.ledger.jobs()} == {"succeeded"}
    for job_id in JOBS:
        run, outcome = service.ledger.run(job_id), service.ledger.outcome(job_id)
        assert run is not None and run.finished_at == NOW + timedelta(seconds=RUN_S)
        assert outcome is not None and outcome["finished_at"] == run.finished_at.isoformat()
        assert [t.to_state for t in service.ledger.transitions(job_id)] == [
            "queued", "running", "succeeded",
        ]  # fmt: skip
    assert sorted(FileExecutor(tmp_path).launched()) == list(JOBS)  # none launched again
    service.ledger.close()
