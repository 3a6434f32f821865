"""systemd's watchdog for the service loop: ``WATCHDOG=1`` between steps, and during a step
while it is within its allowance.

The loop's main thread pings between steps (every half of ``WatchdogSec``). A step may run
longer than ``WatchdogSec`` and be working (a plan of many jobs, a refresh retrying a failing
API for several zones): the loop gives each step an allowance
(:func:`daemon.supervision.health.step_allowance_s`, what ``health.json`` tells ``carbond doctor``),
and a thread of this module pings for the step while it runs within it. Past its allowance the
thread pings no more and logs ``watchdog_withheld`` once: a step hung there is a daemon systemd
restarts, within one ``WatchdogSec`` of the allowance's end. A main thread stuck anywhere else
(never in a step) is restarted as before, ``WatchdogSec`` after its last ping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from daemon.supervision.sdnotify import Notifier

__all__ = ["StepWatchdog"]

log = structlog.get_logger(__name__)

_TICKS_A_PING = 4  # the thread looks this many times a ping interval (ping gap: 1.25 of it)


class StepWatchdog:
    """Sends ``notifier``'s watchdog pings for the loop (nothing when systemd asked for none).

    Args:
        notifier: where ``WATCHDOG=1`` goes; its ``watchdog_interval_s`` is the ping period.
        monotonic: the clock the allowances are measured on (tests may pass their own).
    """

    def __init__(
        self, notifier: Notifier, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._notifier = notifier
        self._interval_s = notifier.watchdog_interval_s()
        self._monotonic = monotonic
        self._lock = threading.Lock()  # the step, the last ping, and each send
        self._step: tuple[str, float, float] | None = None  # (name, allowance s, deadline)
        self._withheld = False
        self._last_ping: float | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval_s(self) -> float | None:
        """Seconds between pings (half of ``WatchdogSec``), None when systemd asked for none."""
        return self._interval_s

    def start(self) -> None:
        """Start the thread that pings during steps (nothing without a watchdog)."""
        if self._interval_s is None or self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._watch, name="carbond-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop that thread (it pings no more)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def ping_if_due(self) -> None:
        """Between steps (the main thread): ping when the last ping is a period old."""
        with self._lock:
            if self._interval_s is not None and self._due(self._monotonic()):
                self._ping(self._monotonic())

    def begin_step(self, step: str, allowance_s: float) -> None:
        """``step`` begins and may take ``allowance_s``: pinged for until then."""
        with self._lock:
            self._step = (step, allowance_s, self._monotonic() + allowance_s)
            self._withheld = False

    def end_step(self) -> None:
        """The step is over: the main thread pings again."""
        with self._lock:
            self._step = None

    def _watch(self) -> None:
        assert self._interval_s is not None
        while not self._stopping.wait(self._interval_s / _TICKS_A_PING):
            with self._lock:
                self._ping_in_step()

    def _ping_in_step(self) -> None:
        """With the lock held: ping for the step running, if it is within its allowance."""
        if self._step is None:
            return
        name, allowance_s, deadline = self._step
        now = self._monotonic()
        if now >= deadline:
            if not self._withheld:
                self._withheld = True
                log.error("watchdog_withheld", step=name, allowance_s=round(allowance_s, 1))
            return
        if self._due(now):
            self._ping(now)

    def _due(self, now: float) -> bool:
        assert self._interval_s is not None
        return self._last_ping is None or now - self._last_ping >= self._interval_s

    def _ping(self, now: float) -> None:
        self._notifier.watchdog()
        self._last_ping = now
