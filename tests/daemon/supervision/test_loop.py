"""The service loop: steps fired on intervals in the main thread, signals, reload, watchdog."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.errors import StoppingError
from daemon.settings import PolicySettings, Settings
from daemon.supervision.loop import STEP_NAMES, Intervals, ServiceLoop
from daemon.supervision.sdnotify import Notifier
from daemon.supervision.warmup import PlannerWarmup
from tests.daemon.supervision.recording_steps import AllowanceSteps, RecordingSteps

FAST = Intervals(ingest_s=0.05, refresh_intensity_s=0.05, plan_s=0.05, reconcile_s=0.05)
PINNED = datetime(2026, 1, 1, tzinfo=UTC)


class RecordingSink:
    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    def observe_step(self, step: str, duration_s: float, *, failed: bool = False) -> None:
        assert duration_s >= 0
        self.seen.append((step, failed))


def _after(calls: int, steps: RecordingSteps, action: Callable[[], None]) -> None:
    """Run ``action`` (once) inside a step, after ``calls`` step calls."""

    def on(step: str) -> None:
        if len(steps.calls) == calls:
            action()

    steps.on = on


def _kill_self(sig: signal.Signals) -> Callable[[], None]:
    return lambda: os.kill(os.getpid(), sig)


@pytest.fixture
def watchdog_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(0.5)
    yield sock, str(tmp_path / "notify")
    sock.close()


def _drain(sock: socket.socket) -> list[str]:
    messages = []
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except TimeoutError:
        return messages


def test_every_step_runs_in_order_first_then_repeatedly_in_the_main_thread() -> None:
    steps = RecordingSteps()
    sink = RecordingSink()
    loop = ServiceLoop(steps, FAST, sink=sink, clock=lambda: PINNED)
    _after(12, steps, _kill_self(signal.SIGTERM))

    assert loop.run() == 0

    names = [name for name, _, _ in steps.calls]
    assert tuple(names[:4]) == STEP_NAMES  # the start-up pass, in tick order
    assert all(names.count(step) >= 2 for step in STEP_NAMES)
    assert {thread for _, _, thread in steps.calls} == {"MainThread"}
    assert {now for _, now, _ in steps.calls} == {PINNED}
    assert len(sink.seen) == len(steps.calls)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_a_failing_step_is_logged_counted_and_the_loop_goes_on() -> None:
    steps = RecordingSteps()
    steps.fail = {"plan"}
    sink = RecordingSink()
    loop = ServiceLoop(steps, FAST, sink=sink)
    _after(10, steps, loop.request_stop)

    assert loop.run() == 0

    assert ("plan", True) in sink.seen and ("ingest", False) in sink.seen
    assert len(steps.calls) >= 10


class _GivenUpError(StoppingError):
    """A step's work given up because the daemon is stopping."""


@pytest.mark.parametrize(
    ("error", "stopped", "event"),
    [
        (_GivenUpError("gave up: stopping"), True, "step_abandoned"),
        (_GivenUpError("gave up: stopping"), False, "step_failed"),  # no stop was asked for
        (RuntimeError("broke"), True, "step_failed"),  # another failure during the stop
    ],
)
def test_only_a_step_given_up_at_the_stop_is_logged_abandoned(
    error: Exception, stopped: bool, event: str
) -> None:
    """... and only a failure counts in ``carbond_step_errors_total``: a step given up at a
    clean stop is no error (until 2026-12-07 it was counted as one)."""
    steps = RecordingSteps()
    sink = RecordingSink()
    loop = ServiceLoop(steps, FAST, sink=sink)

    def on(step: str) -> None:
        if step == "plan":
            if stopped:
                loop.request_stop()
            raise error
        if step == "reconcile":
            loop.request_stop()

    steps.on = on
    with capture_logs() as logs:
        assert loop.run() == 0

    (logged,) = [e for e in logs if e["event"] in ("step_failed", "step_abandoned")]
    assert logged["event"] == event and logged["step"] == "plan"
    counted = [step for step, failed in sink.seen if failed]  # as the step errors counter
    assert counted == ([] if event == "step_abandoned" else ["plan"])
    if event == "step_abandoned":
        assert logged["reason"] == "gave up: stopping" and logged["log_level"] == "info"
        assert "exc_info" not in logged
    else:
        assert logged["exc_info"] is True and logged["log_level"] == "error"


def test_sighup_swaps_in_new_steps_and_a_failed_reload_keeps_the_old() -> None:
    old, new = RecordingSteps("old"), RecordingSteps("new")
    answers: list[tuple[RecordingSteps, Intervals] | None] = [None, (new, FAST)]

    def reload() -> tuple[RecordingSteps, Intervals] | None:
        return answers.pop(0)  # first: invalid config (None); second: a good one

    loop = ServiceLoop(old, FAST, reload=reload)  # type: ignore[arg-type]

    def on_old(step: str) -> None:
        if len(old.calls) in {4, 8}:
            os.kill(os.getpid(), signal.SIGHUP)

    old.on = on_old
    _after(4, new, _kill_self(signal.SIGTERM))

    assert loop.run() == 0

    assert len(old.calls) >= 8  # survived the first (rejected) reload
    assert len(new.calls) >= 4
    assert answers == []


def test_a_reload_refreshes_the_intensity_at_once() -> None:
    """The new service's zones may differ and it has no intensity yet: its first refresh
    comes with the reload, not ``refresh_s`` later (the reload restarts every interval, so
    reloads more often than that never refreshed an idle daemon, and the intensity metrics
    kept a removed zone and lacked an added one until then)."""
    slow_refresh = Intervals(ingest_s=0.05, refresh_intensity_s=3600, plan_s=0.05,
                             reconcile_s=0.05)  # fmt: skip
    old, new = RecordingSteps("old"), RecordingSteps("new")
    loop = ServiceLoop(old, slow_refresh, reload=lambda: (new, slow_refresh))  # type: ignore[arg-type]
    _after(6, old, _kill_self(signal.SIGHUP))  # after the start-up pass
    _after(12, new, _kill_self(signal.SIGTERM))

    assert loop.run() == 0

    assert [c[0] for c in old.calls].count("refresh_intensity") == 1  # the start-up pass
    assert "refresh_intensity" in [c[0] for c in new.calls]


def test_second_stop_signal_forces_the_stop_inside_a_stuck_step() -> None:
    steps = RecordingSteps()
    loop = ServiceLoop(steps, FAST)

    def stuck(step: str) -> None:
        if step == "plan":
            os.kill(os.getpid(), signal.SIGTERM)  # graceful stop requested ...
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)  # ... and insisted on
            time.sleep(30)  # never reached: the second signal interrupts the step
            raise AssertionError("the forced stop did not interrupt the step")

    steps.on = stuck

    assert loop.run() == 1


def test_ready_watchdog_and_stopping_are_sent(watchdog_socket: tuple[socket.socket, str]) -> None:
    sock, path = watchdog_socket
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})  # ping every 0.05 s
    steps = RecordingSteps()
    loop = ServiceLoop(steps, Intervals(0.1, 0.1, 0.1, 0.1), notifier=notifier)
    _after(16, steps, loop.request_stop)

    with notifier:
        assert loop.run() == 0

    messages = _drain(sock)
    assert messages[0] == "READY=1\nSTATUS=carbond running"
    assert messages[-1] == "STOPPING=1\nSTATUS=carbond stopping"
    assert messages.count("WATCHDOG=1") >= 2


def test_a_step_already_waiting_is_not_queued_twice() -> None:
    steps = RecordingSteps()
    loop = ServiceLoop(steps, Intervals(3600, 3600, 3600, 3600))
    for _ in range(5):
        loop.trigger("plan")  # before start: it waits, and so does the start-up pass's
    _after(len(STEP_NAMES), steps, loop.request_stop)

    assert loop.run() == 0

    names = [name for name, _, _ in steps.calls]
    assert names == ["plan", "ingest", "refresh_intensity", "reconcile"]


def test_an_ingest_that_accepts_jobs_plans_at_once() -> None:
    """New jobs do not wait for the plan interval: an ingest that accepted any triggers a plan."""

    class Accepting(RecordingSteps):
        def ingest(self, now: datetime) -> object:
            self._record("ingest", now)
            return type("Result", (), {"accepted": ("job-1",), "cancels": ()})()

    slow_plan = Intervals(ingest_s=0.05, refresh_intensity_s=60, plan_s=60, reconcile_s=60)
    steps = Accepting()
    loop = ServiceLoop(steps, slow_plan, clock=lambda: PINNED)
    _after(8, steps, _kill_self(signal.SIGTERM))

    assert loop.run() == 0

    names = [name for name, _, _ in steps.calls]
    after_start = names[len(STEP_NAMES) :]
    assert "plan" in after_start, "a plan must follow an ingest that accepted jobs"
    first_ingest = after_start.index("ingest")
    assert after_start[first_ingest + 1] == "plan"


@pytest.mark.parametrize(("environ", "allowance_s"),
                         [({}, 90.0), ({"WATCHDOG_USEC": "300000000"}, 300.0)])  # fmt: skip
def test_each_step_is_announced_with_how_long_it_may_take(
    environ: dict[str, str], allowance_s: float
) -> None:
    """``health.json`` learns of a step before it runs, with its allowance: at least 90 s
    (doctor's heartbeat rule), three of its periods, or systemd's WatchdogSec."""
    steps = AllowanceSteps()
    slow = Intervals(ingest_s=0.05, refresh_intensity_s=0.05, plan_s=0.05, reconcile_s=0.05)
    loop = ServiceLoop(steps, slow, notifier=Notifier(environ))
    _after(6, steps, loop.request_stop)
    assert loop.run() == 0
    assert [s for s, _ in steps.allowances][:4] == list(STEP_NAMES)
    assert {a for _, a in steps.allowances} == {allowance_s}


def test_plans_wait_for_the_planner_warmup_while_ingests_go_on() -> None:
    """A fresh install compiles the planner in the warm-up's thread: the jobs submitted
    meanwhile are ingested, no plan runs before the warm-up ends, and its end plans at once."""
    release = threading.Event()
    warmup = PlannerWarmup(Settings(), warm=lambda settings: release.wait(30) and None)
    slow_plan = Intervals(ingest_s=0.05, refresh_intensity_s=60, plan_s=60, reconcile_s=60)
    steps = RecordingSteps()
    loop = ServiceLoop(steps, slow_plan, clock=lambda: PINNED, warmup=warmup)

    def on(step: str) -> None:
        names = [name for name, _, _ in steps.calls]
        if names.count("ingest") == 5:
            release.set()
        if step == "plan":
            loop.request_stop()

    steps.on = on
    started = time.monotonic()
    assert loop.run() == 0

    names = [name for name, _, _ in steps.calls]
    assert names.index("plan") > [i for i, n in enumerate(names) if n == "ingest"][4]
    assert time.monotonic() - started < 30, "the warm-up's end must plan, not the plan interval"


def test_a_reload_that_changes_the_policy_defers_plans_until_it_is_warm() -> None:
    """A SIGHUP from run-now to carbon-window compiled the new policy's loops in its first
    plan, in the main thread (~20 s on a fresh install), the jobs submitted meanwhile unread:
    the reload warms it in the warm-up's thread instead, the new steps ingest meanwhile, plan
    only once it ends, and its end plans at once."""
    warmed: list[str] = []
    release = threading.Event()

    def warm(settings: Settings) -> None:
        warmed.append(settings.policy.name)
        if len(warmed) > 1:
            release.wait(30)

    warmup = PlannerWarmup(Settings(policy=PolicySettings(name="run-now")), warm=warm)
    intervals = Intervals(ingest_s=0.05, refresh_intensity_s=60, plan_s=0.05, reconcile_s=60)
    old, new = RecordingSteps("old"), RecordingSteps("new")

    def reload() -> tuple[RecordingSteps, Intervals]:
        warmup.follow(Settings(policy=PolicySettings(name="carbon-window")))
        return new, intervals

    loop = ServiceLoop(old, intervals, reload=reload, warmup=warmup)  # type: ignore[arg-type]

    def on_old(step: str) -> None:
        if step == "plan":
            loop.request_reload()
        if [name for name, _, _ in old.calls].count("plan") == 3:
            loop.request_stop()  # the reload failed

    def on_new(step: str) -> None:
        if [name for name, _, _ in new.calls].count("ingest") == 5:
            release.set()
        if step == "plan":
            loop.request_stop()

    old.on, new.on = on_old, on_new
    started = time.monotonic()
    assert loop.run() == 0

    assert warmed == ["run-now", "carbon-window"]
    names = [name for name, _, _ in new.calls]
    assert names.index("plan") > [i for i, n in enumerate(names) if n == "ingest"][4]
    assert time.monotonic() - started < 30, "the warm-up's end must plan"


def test_a_reload_that_keeps_the_policy_warms_nothing_again() -> None:
    warmed: list[str] = []
    settings = Settings(policy=PolicySettings(name="carbon-window", params={"slot_s": 900}))
    warmup = PlannerWarmup(settings, warm=lambda s: warmed.append(s.policy.name))
    ended = threading.Event()
    warmup.start(ended.set)
    assert ended.wait(10)

    assert not warmup.follow(settings.model_copy(update={"plan_window": 5}))
    assert warmup.done and warmed == ["carbon-window"]
    changed = Settings(policy=PolicySettings(name="carbon-window", params={"slot_s": 1800}))
    ended.clear()
    assert warmup.follow(changed)  # its parameters changed: warmed again
    assert ended.wait(10) and warmup.done and warmed == ["carbon-window"] * 2


def test_a_failed_warmup_still_lets_the_daemon_plan() -> None:
    def broken(settings: Settings) -> None:
        raise RuntimeError("numba broke")

    steps = RecordingSteps()
    loop = ServiceLoop(steps, FAST, warmup=PlannerWarmup(Settings(), warm=broken))
    # Stopped at its first plan, or after 30 s without one: the failure's traceback is
    # rendered before the warm-up ends, and on a loaded machine 12 steps came before that.
    steps.on = lambda step: loop.request_stop() if step == "plan" else None
    give_up = threading.Timer(30, loop.request_stop)
    give_up.start()
    try:
        assert loop.run() == 0
    finally:
        give_up.cancel()
    assert "plan" in [name for name, _, _ in steps.calls]
