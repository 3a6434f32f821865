"""The planner's compiled loops, compiled before the first plan, away from the main thread.

The policies' numba functions (:mod:`policies.compiled`) compile at their first call, and
on a fresh install (no numba cache yet) that took ~16 s in the first plan round: the main
thread did nothing else meanwhile, so the jobs submitted then were not read until it ended.
:class:`PlannerWarmup` plans two small made-up rounds with its own copy of the configured
policy in a thread at start; the service loop defers its plan steps until it is done (and
ingests, refreshes and reconciles meanwhile), then plans at once. Later starts load the
compiled code from numba's cache: the warm-up then takes well under a second. A reload
(SIGHUP) that changes the policy or its parameters warms the new policy the same way
(:meth:`PlannerWarmup.follow`), plans deferred until it is done.

The made-up rounds decide nothing and touch nothing of the daemon's: the policy is pure
(:class:`policies.Policy`) and the copy is the thread's alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import structlog

from daemon.intensity.providers import ZoneSeries
from daemon.planning import build_policy, with_run_now_recorded
from daemon.settings import Settings
from policies import Device, JobSpec, Policy
from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG, Workload

__all__ = ["PlannerWarmup", "warm_planner"]

log = structlog.get_logger(__name__)

_NOW = datetime(2024, 6, 1, tzinfo=UTC)
_ZONES = ("CA-QC", "DE")
_GPUS = ("T4", "A100-40GB")


def warm_planner(settings: Settings) -> None:
    """Plan two small made-up rounds (new jobs, then the same a minute later with one more)
    with a new copy of ``settings``' policy: its compiled loops are compiled (or loaded from
    numba's cache) when this returns.

    Raises:
        PoliciesError: the policy refuses its parameters (the settings have checked them).
    """
    policy = build_policy(settings.policy.name, settings.policy.params, settings.lifetime_years)
    devices = [
        Device(f"r{i}/{k}", f"r{i}", _ZONES[i], DEFAULT_GPU_CATALOG.get(gpu))
        for i, gpu in enumerate(_GPUS)
        for k in range(2)
    ]
    hours = np.arange(60, dtype=np.float64)
    forecasts = {
        zone: ZoneSeries(zone, _NOW, 3600, 200.0 + 100.0 * np.sin(hours / 24 * 2 * np.pi + k))
        for k, zone in enumerate(_ZONES)
    }
    jobs = [_job(i) for i in range(12)]  # more than the GPUs: some wait, some move
    _plan(policy, _NOW, jobs, devices, forecasts)
    later = _NOW + timedelta(minutes=1)
    busy = [replace(d, busy_until=later + timedelta(hours=1)) if i == 0 else d
            for i, d in enumerate(devices)]  # fmt: skip
    again = [with_run_now_recorded(job) for job in jobs[1:]] + [_job(12)]
    _plan(policy, later, again, busy, forecasts)


def _job(i: int) -> JobSpec:
    model = DEFAULT_MODEL_CATALOG.get("llama-3b")
    deadline = None if i % 3 == 1 else _NOW + timedelta(hours=4 + 3 * (i % 5))
    requests = 4000 * (i % 4 + 1)
    workload = Workload(batch_size=8, input_tokens=256, output_tokens=128, requests=requests)
    return JobSpec(f"warmup-{i}", model, workload, _NOW, deadline, priority=i % 2)


def _plan(
    policy: Policy,
    now: datetime,
    jobs: list[JobSpec],
    devices: list[Device],
    forecasts: dict[str, ZoneSeries],
) -> None:
    policy.plan(now, jobs, devices, forecasts)


class PlannerWarmup:
    """:func:`warm_planner` in a daemon thread; :attr:`done` once it returned or failed (a
    failure is logged, never raised: the first plan then compiles what it needs itself).
    A reload that changes the policy warms the new one the same way (:meth:`follow`)."""

    def __init__(self, settings: Settings, warm: Callable[[Settings], None] = warm_planner):
        self._settings = settings
        self._warm = warm
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._running = 0  # warm-ups not ended yet (a reload's may start before the first ends)
        self._on_done: Callable[[], None] | None = None

    @property
    def done(self) -> bool:
        """Whether every warm-up started has ended (compiled or failed)."""
        return self._done.is_set()

    def start(self, on_done: Callable[[], None]) -> None:
        """Start the thread; ``on_done`` is called from it at the end (the loop's plan
        trigger), and at the end of each warm-up :meth:`follow` starts."""
        self._on_done = on_done
        self._spawn(self._settings)

    def follow(self, settings: Settings) -> bool:
        """The daemon plans with ``settings`` from now on (SIGHUP): where its policy, the
        policy's parameters or the lifetime it plans with changed, warm the new policy as at
        start (the first plan of a newly compiled policy took ~20 s in the main thread, the
        jobs submitted meanwhile left unread): :attr:`done` is False until it ends. Returns
        whether a warm-up started (not before :meth:`start`: it warms ``settings`` then)."""
        before, self._settings = self._settings, settings
        if self._on_done is None or _planner_of(before) == _planner_of(settings):
            return False
        log.info("planner_warmup_started", policy=settings.policy.name, reason="reload")
        self._spawn(settings)
        return True

    def _spawn(self, settings: Settings) -> None:
        with self._lock:
            self._running += 1
            self._done.clear()
        threading.Thread(
            target=self._run, args=(settings,), name="carbond-warmup", daemon=True
        ).start()

    def _run(self, settings: Settings) -> None:
        started = time.monotonic()
        try:
            self._warm(settings)
        except Exception:  # the first plan compiles what it needs; never stop the daemon
            log.exception("planner_warmup_failed")
        else:
            log.info("planner_warm", policy=settings.policy.name,
                     duration_s=round(time.monotonic() - started, 2))  # fmt: skip
        finally:
            with self._lock:
                self._running -= 1
                last = self._running == 0
                if last:
                    self._done.set()
            if last and self._on_done is not None:
                self._on_done()


def _planner_of(settings: Settings) -> tuple[str, dict[str, object], float]:
    """What :func:`warm_planner` builds its policy from."""
    return settings.policy.name, settings.policy.params, settings.lifetime_years
