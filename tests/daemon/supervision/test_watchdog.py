"""systemd's watchdog during a long step: pinged for while it is within its allowance, and no
more once it is past it (a hung step is still restarted). A real AF_UNIX datagram socket
stands in for systemd's notify socket."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.supervision.loop import Intervals, ServiceLoop
from daemon.supervision.sdnotify import Notifier
from daemon.supervision.watchdog import StepWatchdog
from tests.daemon.supervision.recording_steps import AllowanceSteps, RecordingSteps

WATCHDOG_S = 1.0  # WatchdogSec: systemd restarts a daemon silent for this long
ENVIRON_USEC = str(int(WATCHDOG_S * 1_000_000))


class FakeSystemd:
    """The notify socket: every datagram with the monotonic time it arrived."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.settimeout(0.05)
        self.received: list[tuple[float, str]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._done.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self._sock.close()

    def pings(self) -> list[float]:
        return [at for at, text in self.received if text == "WATCHDOG=1"]


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(tmp_path / "notify")
    yield fake
    fake.close()


def test_a_step_longer_than_watchdogsec_within_its_allowance_keeps_the_daemon(
    systemd: FakeSystemd,
) -> None:
    """The main thread pinged only between steps: a plan (or refresh) running past WatchdogSec
    (300 s in the shipped unit) went silent that long, and systemd killed a working daemon.
    Its allowance (at least 90 s here, more than the step takes) keeps it pinged."""
    notifier = Notifier({"NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": ENVIRON_USEC})
    steps = RecordingSteps()
    loop = ServiceLoop(steps, Intervals(3600, 3600, 3600, 3600), notifier=notifier)

    def on(step: str) -> None:  # the start-up pass: ingest, refresh, a long plan, reconcile
        if step == "plan":
            time.sleep(3 * WATCHDOG_S)
        if step == "reconcile":
            loop.request_stop()

    steps.on = on
    with notifier:
        started = time.monotonic()
        assert loop.run() == 0
        ended = time.monotonic()
    time.sleep(0.1)  # the last datagrams arrive
    assert ended - started >= 3 * WATCHDOG_S
    assert [text for _, text in systemd.received][-1].startswith("STOPPING=1")
    times = [started, *systemd.pings(), ended]
    gaps = [b - a for a, b in pairwise(times)]
    assert max(gaps) < WATCHDOG_S, gaps  # systemd never saw WatchdogSec of silence


def test_a_step_past_its_allowance_is_pinged_for_no_more(systemd: FakeSystemd) -> None:
    """A hung step must still be caught: past its allowance the thread stops pinging (and
    says so once), and systemd restarts the daemon within one WatchdogSec."""
    notifier = Notifier({"NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": ENVIRON_USEC})
    watchdog = StepWatchdog(notifier)
    allowance_s = 1.5 * WATCHDOG_S
    with notifier, capture_logs() as logs:
        watchdog.start()
        try:
            watchdog.ping_if_due()  # the main thread, before the step
            began = time.monotonic()
            watchdog.begin_step("plan", allowance_s)
            time.sleep(allowance_s + 2 * WATCHDOG_S)  # hung
            ended = time.monotonic()
            watchdog.end_step()
        finally:
            watchdog.stop()
    time.sleep(0.1)
    pings = systemd.pings()
    during = [at for at in pings if began <= at <= ended]
    assert during, pings  # pinged for while within its allowance (past one WatchdogSec)
    # then silent (pinging on, it would ping about every half WatchdogSec): systemd restarts it
    assert max(during) < began + allowance_s + 0.45 * WATCHDOG_S
    assert max(during) - began >= WATCHDOG_S - 0.3
    assert [e for e in logs if e["event"] == "watchdog_withheld"] == [
        {"event": "watchdog_withheld", "step": "plan", "allowance_s": allowance_s,
         "log_level": "error"}
    ]  # fmt: skip


def test_no_thread_and_no_ping_without_a_watchdog() -> None:
    """Outside systemd, or without WatchdogSec, nothing is started or sent."""
    watchdog = StepWatchdog(Notifier({}))
    watchdog.start()
    assert watchdog.interval_s is None
    assert not [t for t in threading.enumerate() if t.name == "carbond-watchdog"]
    watchdog.begin_step("plan", 90.0)
    watchdog.ping_if_due()
    watchdog.end_step()
    watchdog.stop()


def test_a_step_with_a_long_period_is_allowed_15_minutes_not_three_periods() -> None:
    """Three of a step's periods was its allowance whatever the period: with a daily
    ``refresh_s`` a refresh hung for three days read as in progress to doctor, and (pinged for
    within its allowance) would not be restarted by systemd until then. What a step takes does
    not grow with its period: three periods count for at most 15 minutes."""
    steps = AllowanceSteps()
    daily = Intervals(ingest_s=2.0, refresh_intensity_s=86_400.0, plan_s=600.0, reconcile_s=5.0)
    loop = ServiceLoop(steps, daily, notifier=Notifier({"WATCHDOG_USEC": "300000000"}))

    def on(step: str) -> None:
        if step == "reconcile":  # the start-up pass is over
            loop.request_stop()

    steps.on = on
    assert loop.run() == 0
    assert steps.allowances == [
        ("ingest", 300.0), ("refresh_intensity", 900.0), ("plan", 900.0), ("reconcile", 300.0)
    ]  # fmt: skip
