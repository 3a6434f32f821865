"""A held job whose plan lies past its latest safe start (the planner's rescue path)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from daemon.settings import RegionSettings
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line, make_service

ONE_T4 = (RegionSettings(name="qc", zone="CA-QC", gpus=("T4",)),)


def test_a_hold_past_its_latest_safe_start_says_it_starts_when_a_gpu_frees(
    tmp_path: Path,
) -> None:
    """The one GPU runs "long" for ~18 min; "next" (deadline +20 min) has no free slot before
    its latest safe start, so the rescue plans it on the first slot the timeline has free.
    Its reason read "latest safe start 00:05" beside a plan at 00:30, as if the planner
    knowingly planned past it; it is planned again each round and starts on the GPU as soon
    as "long" frees it, long before that slot, and its reason now says so."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, regions=ONE_T4, policy="carbon-window")
    service.start(clock())
    append(service.queue.path, job_line(id="long", requests=400, priority=5))
    assert service.tick(clock()).started == ("long",)
    append(service.queue.path, job_line(id="next", deadline="+20m"))
    clock.advance(60)
    service.tick(clock())
    held = service.ledger.latest_decision("next")
    assert held is not None and held.action == "hold"
    planned = held.planned_start
    latest = re.search(r"latest safe start (\S+):", held.reason)
    assert planned is not None and latest is not None, held.reason
    assert planned > datetime.fromisoformat(latest[1]) > clock()  # planned past it, not now
    assert held.reason.endswith(
        f"; planned past its latest safe start {latest[1]}: starts on the first suitable GPU"
        " that frees"
    )
    clock.advance(5 * 60)
    executor.finish("long", clock())
    report = service.tick(clock())
    assert (report.finished, report.started) == (("long",), ("next",))  # not at the slot
    started = service.ledger.latest_decision("next")
    assert started is not None and started.planned_start == clock() < planned
    assert "past its latest safe start: the earliest devices that end in time" in started.reason


def test_a_held_job_without_a_deadline_quotes_no_latest_safe_start(tmp_path: Path) -> None:
    """A job with no deadline behind a long run read "planned past its latest safe start T",
    T the round's own slot (before it was submitted, as its latest start is "now"), every
    round. It says it has no deadline, through the rounds that keep its plan too."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, regions=ONE_T4, policy="carbon-window")
    service.start(clock())
    append(service.queue.path, job_line(id="long", requests=400, priority=5))
    assert service.tick(clock()).started == ("long",)
    append(service.queue.path, job_line(id="next"))
    reasons = set()
    for _ in range(4):
        service.tick(clock.advance(60))
        held = service.ledger.latest_decision("next")
        assert held is not None and held.action == "hold", held
        reasons.add(held.reason)
    for reason in reasons:
        assert "latest safe start" not in reason, reason
        assert reason.endswith(
            "; no deadline, so no later start is planned: starts on the first suitable GPU that "
            "frees"
        ), reason
