"""``carbond prune-logs``: the log files of jobs that ended long ago go; nothing else does."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.executors.jobfiles import process_start_ticks
from daemon.executors.logprune import job_of_log_file
from daemon.ledger import Ledger
from daemon.testing import FakeClock
from tests.daemon.endings.stubborn_jobs import graced_executor, started_stubborn
from tests.daemon.helpers import job_request
from tests.daemon.measurement.measured_service import build, lose_gpu

NOW = datetime.now(UTC)
LONG_AGO = NOW - timedelta(days=30)
FILES = (".out", ".err", ".spec.json", ".status.json", ".started.1")


@pytest.mark.parametrize(
    ("name", "job"),
    [("j1.out", "j1"), ("a.b.err", "a.b"), ("x.spec.json", "x"), ("x.status.json", "x"),
     ("x.started.12", "x"), (".x.status.json.tmp", "x"), ("x.out.err", "x.out"),
     ("x.json", None), ("notes.txt", None), ("x.started.", None)],
)  # fmt: skip
def test_log_files_are_told_apart_by_their_job(name: str, job: str | None) -> None:
    assert job_of_log_file(name) == job


def _state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    logs = state / "logs"
    logs.mkdir(parents=True)
    with Ledger.open(state / "ledger.db") as ledger, ledger.transaction():
        for job_id in ("old", "old.busy", "recent", "running"):
            ledger.add_job(job_request(job_id, LONG_AGO), 1000, 1000, "queue.jsonl:1", LONG_AGO)
            ledger.transition(job_id, "running", LONG_AGO, "dispatched")
        for job_id, at in (("old", LONG_AGO), ("old.busy", LONG_AGO), ("recent", NOW)):
            ledger.transition(job_id, "succeeded", at, "exit 0")
    for job_id in ("old", "old.busy", "recent", "running", "ghost"):
        for suffix in FILES:
            (logs / f"{job_id}{suffix}").write_text("x" * 10)
            os.utime(logs / f"{job_id}{suffix}", (LONG_AGO.timestamp(),) * 2)
    (logs / ".old.status.json.tmp").write_text("{")  # a crash's leftover
    os.utime(logs / ".old.status.json.tmp", (LONG_AGO.timestamp(),) * 2)
    os.utime(logs / "old.busy.out", None)  # still written to: not old
    return state


def test_prune_logs_removes_only_the_files_of_jobs_that_ended_before_the_cutoff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _state(tmp_path)
    outside = tmp_path / "precious"
    outside.write_text("keep")
    (state / "logs" / "old.err").unlink()  # a link planted there: it goes, not its target
    (state / "logs" / "old.err").symlink_to(outside)
    os.utime(state / "logs" / "old.err", (LONG_AGO.timestamp(),) * 2, follow_symlinks=False)
    before = sorted(p.name for p in (state / "logs").iterdir())

    args = ["prune-logs", "--state-dir", str(state), "--days", "10", "--json"]
    assert main([*args, "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in (state / "logs").iterdir()) == before
    assert main(args) == 0
    done = json.loads(capsys.readouterr().out)

    same = ("jobs", "files", "bytes", "kept_jobs", "unknown_files")
    assert [done[k] for k in same] == [dry[k] for k in same] and dry["dry_run"]
    assert (done["jobs"], done["files"], done["bytes"]) == (["old"], 6, 41 + len(str(outside)))
    assert done["kept_jobs"] == 3  # old.busy (written since), recent, running
    assert done["unknown_files"] == sorted(f"ghost{s}" for s in FILES)
    left = sorted(p.name for p in (state / "logs").iterdir())
    assert left == sorted(n for n in before if job_of_log_file(n) != "old")
    assert outside.read_text() == "keep"


def test_prune_logs_says_what_it_did(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = _state(tmp_path)
    assert main(["prune-logs", "--state-dir", str(state), "--days", "10"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{state / 'logs'}: removed 6 files (0.0 MiB) of 1 job that ended ")
    assert "; kept the files of 3 jobs (not final" in out[0]  # old.busy, recent, running
    assert out[1] == "left 5 files of jobs the ledger does not know, e.g. ghost.err"
    assert main(["prune-logs", "--state-dir", str(tmp_path), "--days", "1"]) == 2
    assert "no ledger" in capsys.readouterr().err


def test_prune_logs_keeps_the_files_of_a_run_still_being_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lost GPU's job is recorded ``failed`` at once, while its run is still being stopped
    (SIGTERM, SIGKILL after the grace): its wrapper still runs and writes its files. `carbond
    prune-logs` took the job's final state alone and removed them under it (its output, its
    spec, its start claim), the end its wrapper then recorded left alone in logs/. They stay
    until the run is gone, decided from one read of the ledger."""
    clock, mono = FakeClock(), [1000.0]
    executor = graced_executor(tmp_path, mono)
    service, backend, monitor = build(tmp_path, clock, executor)
    args = ["prune-logs", "--state-dir", str(tmp_path), "--days", "0", "--json"]
    try:
        with started_stubborn(service, executor, clock, tmp_path) as job:
            assert job.run.gpu_indices is not None
            lose_gpu(backend, monitor, clock, job.run.gpu_indices[0])
            service.tick(clock())  # SIGTERM sent (ignored), the job recorded failed
            assert service.ledger.job("stubborn").state == "failed"
            assert [s.run.job_id for s in service.ledger.stopping_runs()] == ["stubborn"]
            before = sorted(p.name for p in (tmp_path / "logs").iterdir())

            assert main(args) == 0

            done = json.loads(capsys.readouterr().out)
            assert (done["jobs"], done["files"], done["kept_jobs"]) == ([], 0, 1)
            assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == before
            assert process_start_ticks(job.pid) == job.ticks  # still running: its files are in use

            mono[0] += 11.0  # the grace is over: SIGKILL, then the run is gone
            for _ in range(200):
                service.tick(clock.advance(0.01))
                if not service.ledger.stopping_runs():
                    break
                time.sleep(0.02)
            assert service.ledger.stopping_runs() == []
            assert main(args) == 0
            assert json.loads(capsys.readouterr().out)["jobs"] == ["stubborn"]
            assert not [p for p in (tmp_path / "logs").iterdir() if p.name.startswith("stubborn")]
    finally:
        service.ledger.close()
