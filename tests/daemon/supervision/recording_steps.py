"""Steps for the service loop that record each call (and the allowance announced before it),
shared by the loop's tests and the watchdog's."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

__all__ = ["AllowanceSteps", "RecordingSteps"]


class RecordingSteps:
    """Records each step call with its thread; ``on`` lets a test act inside a step."""

    def __init__(self, label: str = "a") -> None:
        self.label = label
        self.calls: list[tuple[str, datetime, str]] = []
        self.on: Callable[[str], None] = lambda step: None
        self.fail: set[str] = set()

    def _record(self, step: str, now: datetime) -> None:
        self.calls.append((step, now, threading.current_thread().name))
        self.on(step)
        if step in self.fail:
            raise RuntimeError(f"{step} broke")

    def ingest(self, now: datetime) -> None:
        self._record("ingest", now)

    def refresh_intensity(self, now: datetime) -> None:
        self._record("refresh_intensity", now)

    def plan(self, now: datetime) -> None:
        self._record("plan", now)

    def reconcile(self, now: datetime) -> None:
        self._record("reconcile", now)


class AllowanceSteps(RecordingSteps):
    """Also records what the loop says before each step: how long it may take."""

    def __init__(self) -> None:
        super().__init__()
        self.allowances: list[tuple[str, float]] = []

    def before_step(self, step: str, now: datetime, allowance_s: float) -> None:
        self.allowances.append((step, allowance_s))
