"""The service loop: APScheduler fires triggers; the main thread runs the service's steps.

This is the only module importing APScheduler (3.x). Its ``BackgroundScheduler``
(``coalesce=True, max_instances=1``) does nothing but put a step's name on a queue at each
interval; the main thread takes names off the queue and calls the step with the wall clock
(``step(datetime.now(UTC))``), one step at a time, so the service, its SQLite connection and
the executor are only ever used from one thread. A step already waiting is not queued twice.

Signals (installed only while :meth:`ServiceLoop.run` runs, in the main thread; the previous
handlers are restored afterwards):

- SIGTERM / SIGINT: graceful stop. The handler sets an event; the main thread finishes the
  step it is in, tells systemd ``STOPPING=1`` and returns. Running jobs are left running (the
  next daemon adopts them). A step waiting for another process's lock on the ledger gives up
  at once (``carbond run`` wires :meth:`ServiceLoop.stop_requested` to the ledger), as one
  whose wait timed out would: nothing of that write is made, and the log says
  ``step_abandoned`` (its step and reason, no traceback: :class:`daemon.errors.StoppingError`)
  rather than ``step_failed``; a clean stop is no error: not counted in ``step_errors_total``,
  nor recorded as a problem in ``health.json``. A second SIGTERM/SIGINT forces the stop at
  once, interrupting the step (the ledger's transactions make that safe).
- SIGHUP: reload. The handler sets an event; the main thread calls the ``reload`` callback,
  which builds new settings and returns new steps and intervals, or None to keep the current
  ones (it logs why, e.g. an invalid new config).

The main thread also sends ``WATCHDOG=1`` at half of ``WatchdogSec`` between steps, and a
thread does during a step while it is within its allowance (:mod:`daemon.supervision.watchdog`), so
systemd restarts a daemon whose main thread is stuck, not just one whose process died, and
never one in a long step that is still within its time. Before each step the loop tells the
steps' ``before_step`` hook how long that step may take (``health.json``, for ``carbond
doctor``), and after it ``after_step``.

Given a warm-up (:class:`daemon.supervision.warmup.PlannerWarmup`), the loop starts it with the
daemon and defers the plan steps until it has compiled the planner (logging ``plan_deferred`` once),
so that on a fresh install the jobs submitted meanwhile are ingested, not left unread behind a
first plan that compiles; the warm-up's end triggers a plan at once. A reload whose policy
warms again (:meth:`daemon.supervision.warmup.PlannerWarmup.follow`, which the ``reload`` callback
calls) defers the plan steps the same way (``plan_deferred`` logged once per reload).
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Protocol

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from daemon.errors import StoppingError
from daemon.supervision.health import step_allowance_s
from daemon.supervision.sdnotify import Notifier
from daemon.supervision.watchdog import StepWatchdog

if TYPE_CHECKING:
    from daemon.supervision.warmup import PlannerWarmup

__all__ = ["STEP_NAMES", "Intervals", "ServiceLoop", "StepSink", "Steps"]

log = structlog.get_logger(__name__)

STEP_NAMES = ("ingest", "refresh_intensity", "plan", "reconcile")
_IDLE_WAIT_S = 0.2
CLOCK_STEP_S = 30.0  # wall-clock jumps against the monotonic clock reported as a step


class Steps(Protocol):
    """What the loop drives: the service's public sub-steps, each given the wall clock."""

    def ingest(self, now: datetime) -> object: ...
    def refresh_intensity(self, now: datetime) -> object: ...
    def plan(self, now: datetime) -> object: ...
    def reconcile(self, now: datetime) -> object: ...


class StepSink(Protocol):
    """Where step timings go (:class:`daemon.metrics.prometheus.Metrics` is one)."""

    def observe_step(self, step: str, duration_s: float, *, failed: bool = False) -> None: ...


@dataclass(frozen=True, slots=True)
class Intervals:
    """Seconds between runs of each step (issue 4's defaults)."""

    ingest_s: float = 2.0
    refresh_intensity_s: float = 300.0
    plan_s: float = 30.0
    reconcile_s: float = 5.0

    def of(self, step: str) -> float:
        """The interval of ``step`` in seconds."""
        value: float = getattr(self, f"{step}_s")
        return value


Reload = Callable[[], "tuple[Steps, Intervals] | None"]


class _ForcedStop(BaseException):
    """Raised by the second stop signal to unwind whatever the main thread is doing."""


class ServiceLoop:
    """Runs ``steps`` on their ``intervals`` until a stop is requested.

    Args:
        steps: the service (or anything with the four step methods).
        intervals: how often each step runs.
        notifier: systemd notifications (a disabled one outside systemd).
        sink: receives each step's duration (metrics); optional.
        reload: called on SIGHUP; returns the new steps and intervals, or None to keep them.
        clock: the wall clock handed to steps (tests may pin it).
        warmup: started with the loop; plan steps wait until it is done (None: plan at once).
    """

    def __init__(
        self,
        steps: Steps,
        intervals: Intervals,
        *,
        notifier: Notifier | None = None,
        sink: StepSink | None = None,
        reload: Reload | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        warmup: PlannerWarmup | None = None,
    ) -> None:
        self._steps = steps
        self._intervals = intervals
        self._notifier = notifier or Notifier({})
        self._watchdog = StepWatchdog(self._notifier)
        self._sink = sink
        self._reload = reload
        self._clock = clock
        self._warmup = warmup
        self._deferred_logged = False
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._signals = 0
        self._in_main = False  # a forced stop unwinds only the main loop, never the clean-up
        self._scheduler: BackgroundScheduler | None = None
        self._last_clocks: tuple[datetime, float] | None = None  # (wall, monotonic) at a step

    # -- requests (what signal handlers call; tests call them too) ---------------------------

    def request_stop(self) -> None:
        """Ask for a graceful stop after the current step."""
        self._stop.set()

    def stop_requested(self) -> bool:
        """Whether a stop was asked for (a signal, :meth:`request_stop`): what the ledger's
        lock waits look at, so that a step waiting on another process's lock gives up
        (:meth:`daemon.ledger.base.Connection.stop_waiting_when`)."""
        return self._stop.is_set()

    def request_reload(self) -> None:
        """Ask for a reload before the next step."""
        self._reload_requested.set()

    def trigger(self, step: str) -> None:
        """Queue ``step`` (fired by the scheduler; ignored if it is already waiting)."""
        with self._pending_lock:
            if step in self._pending:
                return
            self._pending.add(step)
        self._queue.put(step)

    # -- running -----------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; return 0 after a graceful stop, 1 after a forced one."""
        previous = self._install_signals()
        self._scheduler = self._start_scheduler()
        if self._warmup is not None:
            self._warmup.start(lambda: self.trigger("plan"))
        for step in STEP_NAMES:  # one full pass at start-up, in tick order
            self.trigger(step)
        self._notifier.ready(status="carbond running")
        log.info("daemon_ready", intervals=self._intervals_fields())
        code = 0
        try:
            self._watchdog.start()
            self._in_main = True
            self._main()
        except _ForcedStop:
            log.warning("daemon_stop_forced")
            code = 1
        finally:
            self._in_main = False
            self._watchdog.stop()
            self._notifier.stopping(status="carbond stopping")
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
            _restore_signals(previous)
        log.info("daemon_stopped", forced=bool(code))
        return code

    def _main(self) -> None:
        interval = self._watchdog.interval_s
        while not self._stop.is_set():
            self._watchdog.ping_if_due()
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._do_reload()
            wait = _IDLE_WAIT_S if interval is None else min(_IDLE_WAIT_S, interval)
            try:
                step = self._queue.get(timeout=wait)
            except queue.Empty:
                continue
            with self._pending_lock:
                self._pending.discard(step)
            if self._stop.is_set():
                continue
            if step == "plan" and self._compiling():
                continue  # the warm-up's end triggers it
            self._run_step(step)

    def _compiling(self) -> bool:
        """Whether the warm-up is still compiling the planner (logged the first time)."""
        if self._warmup is None or self._warmup.done:
            return False
        if not self._deferred_logged:
            self._deferred_logged = True
            log.info("plan_deferred", reason="compiling the planner")
        return True

    def _run_step(self, step: str) -> None:
        method: Callable[[datetime], object] = getattr(self._steps, step)
        started = time.monotonic()
        now = self._clock()
        self._watch_clock(now, started)
        allowance_s = self._allowance_s(step)
        self._hook("before_step", step, now, allowance_s)
        error: Exception | None = None
        abandoned = False
        self._watchdog.begin_step(step, allowance_s)  # pinged for while within its allowance
        try:
            result = method(now)
        except Exception as exc:  # a failing step must not stop the daemon; logged and counted
            error = exc
            abandoned = isinstance(exc, StoppingError) and self._stop.is_set()
            if abandoned:
                # Given up because of the stop (nothing of it done): expected, no traceback,
                # not counted as a step error (nor a problem in health.json: after_step).
                log.info("step_abandoned", step=step, reason=str(exc))
            else:
                log.exception("step_failed", step=step)
        else:
            # New jobs (or cancels) are planned at once rather than at the next plan interval.
            if step == "ingest" and (
                getattr(result, "accepted", None) or getattr(result, "cancels", None)
            ):
                self.trigger("plan")
        finally:
            self._watchdog.end_step()
        if self._sink is not None:
            failed = error is not None and not abandoned
            self._sink.observe_step(step, time.monotonic() - started, failed=failed)
        self._hook("after_step", step, error, now)

    def _allowance_s(self, step: str) -> float:
        """How long ``step`` may run before the daemon in it is stuck: its own period's worth
        or systemd's ``WatchdogSec`` (:func:`daemon.supervision.health.step_allowance_s`)."""
        ping_s = self._notifier.watchdog_interval_s()  # half of WatchdogSec
        return step_allowance_s(self._intervals.of(step), None if ping_s is None else 2 * ping_s)

    def _watch_clock(self, now: datetime, monotonic_s: float) -> None:
        """Log ``clock_stepped`` when the wall clock moved ``CLOCK_STEP_S`` more or less than
        the monotonic clock since the last step (NTP stepping it, an operator setting it)."""
        last, self._last_clocks = self._last_clocks, (now, monotonic_s)
        if last is None:
            return
        step_s = (now - last[0]).total_seconds() - (monotonic_s - last[1])
        if abs(step_s) >= CLOCK_STEP_S:
            log.warning("clock_stepped", step_s=round(step_s, 1), now=now.isoformat())
            self._hook("clock_stepped", step_s, now)

    def _hook(self, name: str, *args: object) -> None:
        """Call the steps' optional ``name`` hook (the service's health file); never raises."""
        hook = getattr(self._steps, name, None)
        if hook is None:
            return
        try:
            hook(*args)
        except Exception:  # the health file must never stop the daemon
            log.exception("step_hook_failed", hook=name)

    def _do_reload(self) -> None:
        if self._reload is None:
            log.info("reload_ignored", reason="no reload callback")
            return
        self._notifier.reloading()
        try:
            result = self._reload()
        except Exception:  # a broken reload keeps the running configuration
            log.exception("reload_failed")
            result = None
        if result is not None:
            self._steps, self._intervals = result
            self._deferred_logged = False  # a new policy's warm-up defers its plans anew
            if self._scheduler is not None:
                self._reschedule(self._scheduler)  # each interval starts again from now
            # The new service has no intensity yet and its zones may differ: refresh now, not
            # refresh_s later (else the metrics keep removed zones and lack added ones, and
            # reloads more often than refresh_s would never refresh an idle daemon)
            self.trigger("refresh_intensity")
            log.info("reload_applied", intervals=self._intervals_fields())
        self._notifier.ready(status="carbond running")

    # -- scheduler and signals ---------------------------------------------------------------

    def _start_scheduler(self) -> BackgroundScheduler:
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._reschedule(scheduler)
        scheduler.start()
        return scheduler

    def _reschedule(self, scheduler: BackgroundScheduler) -> None:
        for step in STEP_NAMES:
            trigger = IntervalTrigger(seconds=self._intervals.of(step), timezone=UTC)
            scheduler.add_job(
                self.trigger, trigger, args=[step], id=step, name=step, replace_existing=True
            )

    def _install_signals(self) -> dict[int, object]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # only the main thread may install handlers (tests may run elsewhere)
        previous: dict[int, object] = {}
        for sig, handler in (
            (signal.SIGTERM, self._on_stop_signal),
            (signal.SIGINT, self._on_stop_signal),
            (signal.SIGHUP, self._on_reload_signal),
        ):
            previous[sig] = signal.signal(sig, handler)
        return previous

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        self._stop.set()
        if self._signals > 1 and self._in_main:
            raise _ForcedStop

    def _on_reload_signal(self, signum: int, frame: FrameType | None) -> None:
        self._reload_requested.set()

    def _intervals_fields(self) -> dict[str, float]:
        return {step: self._intervals.of(step) for step in STEP_NAMES}


def _restore_signals(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]
