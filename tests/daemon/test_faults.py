"""Faults the daemon must ride out: the intensity API down, slow, rate-limited or answering
garbage for hours (on a simulated clock), the wall clock stepping back and forward, and (as
root) a full disk and a read-only state dir mid-run. Each test shows the daemon going on, saying
what is wrong in its log and in ``carbond doctor``, keeping deadlines on the fallback signal,
and recovering. (A lost GPU: ``measurement/test_jobs``; a job ignoring SIGTERM and one that
forks and exits: ``executors/test_local``.)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from structlog.testing import capture_logs

from daemon.assemble_service import build_service
from daemon.doctor.checks import Check, run_checks
from daemon.errors import DaemonError
from daemon.ledger import Ledger
from daemon.settings import RegionSettings, Settings
from daemon.supervision.loop import Intervals, ServiceLoop
from daemon.testing import FakeClock, RecordingExecutor
from forecasts import ElectricityMapsClient, SeriesCache, SignalChain
from tests.daemon.helpers import append, job_line, make_service

TOKEN = "faults-token"
DE = (RegionSettings(name="de", zone="DE", executor="local", gpus=("T4",)),)


def _doctor_health(state: Path, now: datetime) -> Check:
    [health] = [c for c in run_checks(None, now, state_dir=state) if c.name == "health"]
    return health


class _Provider(requests.Session):
    """Electricity Maps on a simulated clock: ``mode`` is ok, down, slow, 429 or garbage."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.mode = "ok"
        self.calls = 0

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.calls += 1
        if self.mode == "down":
            raise requests.ConnectionError("connection refused")
        if self.mode == "slow":
            raise requests.ReadTimeout("read timed out")
        response = requests.Response()
        response.url = str(url)
        response.status_code, response._content = self._answer(str(url))
        if self.mode == "429":
            response.headers["Retry-After"] = "3600"
        return response

    def _answer(self, url: str) -> tuple[int, bytes]:
        if self.mode == "429":
            return 429, b'{"error": "rate limited"}'
        if self.mode == "garbage":
            return 200, b"<html>maintenance</html>"
        hour = self.clock().replace(minute=0, second=0, microsecond=0)

        def point(t: datetime, value: float) -> dict[str, Any]:
            stamp = t.strftime("%Y-%m-%dT%H:%M:%SZ")
            return {"zone": "DE", "carbonIntensity": value, "datetime": stamp}

        if url.endswith("/latest"):
            return 200, json.dumps(point(hour, 300)).encode()
        if url.endswith("/history"):
            points = [point(hour - timedelta(hours=k), 250 + 5 * k) for k in range(24, 0, -1)]
            return 200, json.dumps({"zone": "DE", "history": points}).encode()
        return 403, b'{"error": "forecast not in your plan"}'


def test_intensity_api_down_slow_429_and_garbage_for_hours(tmp_path: Path) -> None:
    clock = FakeClock()
    provider = _Provider(clock)
    client = ElectricityMapsClient(
        provider, token=TOKEN, max_retries=1, sleep=lambda _: None, clock=clock
    )
    chain = SignalChain(provider=client, cache=SeriesCache(tmp_path / "cache"))
    settings = Settings(state_dir=tmp_path, regions=DE, policy={"name": "carbon-window"})
    ledger = Ledger.open(tmp_path / "ledger.db")
    executor = RecordingExecutor()
    service = build_service(settings, ledger, {"local": executor}, intensity=chain)
    service.start(clock())
    submitted: dict[str, datetime] = {}

    def run_for(hours: float) -> list[dict[str, Any]]:
        with capture_logs() as events:
            for step in range(round(hours * 12)):  # a round every 5 minutes
                clock.advance(300)
                if step % 6 == 0:  # a job every 30 minutes, due within 3 hours
                    job_id = f"j{len(submitted)}"
                    submitted[job_id] = clock() + timedelta(hours=3)
                    append(service.queue.path, job_line(id=job_id, deadline="+3h"))
                service.tick(clock())
                service.after_step("tick", None, clock())  # as the loop does after each step
        return events

    run_for(1)
    health = _doctor_health(tmp_path, clock())
    assert health.status == "pass", health.detail
    for mode in ("down", "slow", "429", "garbage"):
        provider.mode = mode
        events = run_for(1.5)
        failed = [e for e in events if e["event"] == "intensity_provider_failed"]
        assert failed and all(e["zone"] == "DE" for e in failed), mode
        health = _doctor_health(tmp_path, clock())
        assert health.status == "fail"
        assert re.search(
            r"intensity:DE \(for \d+ s, since [^)]+\): provider failing", health.detail
        )
        # the rung planned on, not only its source: until 2026-12-07 "planning on
        # electricitymaps" for the cache rung, as if the provider still answered
        assert re.search(
            r"planning on the (cache|history-forecast) rung \([^,]+, \d+\.\d h old\)",
            health.detail,
        ), health.detail
        assert TOKEN not in repr(events) + health.detail
    provider.mode = "ok"
    run_for(4)  # every job due by now
    assert _doctor_health(tmp_path, clock()).status == "pass"
    assert provider.calls > 100  # it kept trying for six hours
    for job_id, deadline in submitted.items():
        job, run = service.ledger.job(job_id), service.ledger.run(job_id)
        assert job.state == "succeeded", job_id
        assert run is not None and run.finished_at is not None and run.finished_at <= deadline
    service.close()
    ledger.close()


def test_the_wall_clock_stepping_back_and_forward(tmp_path: Path) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, regions=DE)
    service.start(clock())
    append(service.queue.path, job_line(id="running") + job_line(id="waits", deadline="+2h"))
    service.tick(clock())
    assert service.ledger.job("waits").state in {"queued", "planned"}
    clock.now -= timedelta(hours=3)  # NTP steps the clock back
    service.tick(clock())
    assert service.ledger.job("waits").state in {"queued", "planned"}  # not expired early
    stepped_back = clock()
    clock.now += timedelta(days=1)  # and a day forward ("running" still holds the GPU)
    service.tick(clock())
    assert service.ledger.job("waits").state == "expired"  # by the time now in force
    executor.finish("running", stepped_back)  # its end stamped while the clock was back
    service.tick(clock())
    outcome = service.ledger.outcome("running")
    assert service.ledger.job("running").state == "succeeded" and outcome is not None
    append(service.queue.path, job_line(id="after"))
    service.tick(clock())
    assert service.ledger.job("after").state == "running"
    service.close()


class _Steps:
    def __init__(self, loop_clock: list[datetime], loop: list[ServiceLoop]) -> None:
        self.clock, self.loop = loop_clock, loop
        self.steps: list[float] = []
        self.rounds = 0

    def clock_stepped(self, step_s: float, now: datetime) -> None:
        self.steps.append(step_s)

    def ingest(self, now: datetime) -> None:
        self.rounds += 1
        self.clock[0] += timedelta(hours=-1 if self.rounds == 3 else 0)
        self.clock[0] += timedelta(hours=2 if self.rounds == 6 else 0)
        if self.rounds >= 8:
            self.loop[0].request_stop()

    def refresh_intensity(self, now: datetime) -> None: ...
    def plan(self, now: datetime) -> None: ...
    def reconcile(self, now: datetime) -> None: ...


def test_the_loop_says_when_the_wall_clock_steps() -> None:
    wall = [datetime(2024, 6, 1, tzinfo=UTC)]
    loops: list[ServiceLoop] = []
    steps = _Steps(wall, loops)
    fast = Intervals(ingest_s=0.01, refresh_intensity_s=60, plan_s=60, reconcile_s=60)
    loops.append(ServiceLoop(steps, fast, clock=lambda: wall[0]))
    with capture_logs() as events:
        assert loops[0].run() == 0
    stepped = [round(e["step_s"] / 3600) for e in events if e["event"] == "clock_stepped"]
    assert stepped == [-1, 2] and [round(s / 3600) for s in steps.steps] == [-1, 2]


# -- a full disk and a read-only state dir (root: a small tmpfs of our own) -----------------


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(path: Path) -> None:
    with path.open("wb") as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 65536)
            filler.flush()


def test_a_full_disk_then_a_read_only_state_dir_mid_run(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with _tmpfs(state, "32m"):
        clock, executor = FakeClock(), RecordingExecutor()
        service = make_service(state, executor, regions=DE)
        service.start(clock())
        append(service.queue.path, "".join(job_line(id=f"a{k}") for k in range(5)))
        service.tick(clock())
        append(service.queue.path, "".join(job_line(id=f"b{k}") for k in range(100)))
        _fill(state / "filler")
        with capture_logs() as events:
            for _ in range(3):  # the loop catches a failed step, reports it, and goes on
                with pytest.raises((DaemonError, OSError)) as failure:
                    service.tick(clock.advance(5))
                service.after_step("ingest", failure.value, clock())
        assert [e["event"] for e in events].count("health_write_failed") == 1
        health = _doctor_health(state, clock())
        assert health.status == "fail" and "MiB free" in health.detail
        (state / "filler").unlink()
        service.tick(clock.advance(5))
        service.after_step("ingest", None, clock())
        assert _doctor_health(state, clock()).status == "pass"

        # Read-only mid-run: a read-only bind mount over the state dir (a tmpfs with open
        # files cannot be remounted read-only). New files and appends fail; a garbage line
        # waiting to be ingested needs rejected.jsonl, so ingestion fails as a whole.
        append(service.queue.path, "not json\n" + job_line(id="c0"))
        subprocess.run(["mount", "--bind", str(state), str(state)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(state)], check=True)
        try:
            with pytest.raises(OSError):
                append(service.queue.path, job_line(id="c1"))  # nobody can submit meanwhile
            with pytest.raises((DaemonError, OSError)) as failure:
                service.tick(clock.advance(5))
            service.after_step("ingest", failure.value, clock())
            health = _doctor_health(state, clock())
            assert health.status == "fail" and "read-only file system" in health.detail
        finally:
            subprocess.run(["umount", str(state)], check=True)  # the bind: writable again
        append(service.queue.path, job_line(id="c1"))
        for _ in range(400):  # one T4 works through the queue
            service.tick(clock.advance(600))
            if service.ledger.counts_by_state().keys() == {"succeeded"}:
                break
        service.after_step("ingest", None, clock())
        assert _doctor_health(state, clock()).status == "pass"
        ids = [job.job_id for job in service.ledger.jobs()]
        expected = [f"a{k}" for k in range(5)] + [f"b{k}" for k in range(100)] + ["c0", "c1"]
        assert sorted(ids) == sorted(expected)  # each once
        assert {job.state for job in service.ledger.jobs()} == {"succeeded"}
        rejected = (state / "rejected.jsonl").read_text().splitlines()
        assert [json.loads(r)["line"] for r in rejected] == ["not json"]
        service.close()
        connection = sqlite3.connect(state / "ledger.db")
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        connection.close()
