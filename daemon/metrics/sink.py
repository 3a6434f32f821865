"""What the service reports to metrics: a small protocol, and a sink that drops everything.

``daemon.metrics.prometheus.Metrics`` (the Prometheus endpoint) implements :class:`MetricsSink`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

__all__ = ["MetricsSink", "NullMetrics"]


class MetricsSink(Protocol):
    """Calls the service makes; none may block or raise."""

    def observe_queue(self, depth_by_state: Mapping[str, int]) -> None:
        """Jobs per state, after each reconcile."""
        ...

    def observe_past_deadline(self, running: int) -> None:
        """Running jobs past their deadline (they run on), after each reconcile."""
        ...

    def observe_decision(
        self,
        policy: str,
        action: str,
        expected_total_g: float | None,
        run_now_total_g: float | None,
    ) -> None:
        """One recorded decision with its expected and run-now grams (None: not placed)."""
        ...

    def observe_started(
        self, policy: str, expected_total_g: float | None, run_now_total_g: float | None
    ) -> None:
        """A job its executor started on its own at its held plan's start (no ``start``
        decision about it), with its expected and run-now grams (None: not counted)."""
        ...

    def observe_outcome(
        self,
        job_id: str,
        state: str,
        measured_total_g: float | None,
        measured_energy_j: float | None = None,
    ) -> None:
        """A job reached a final state with its grams (None: not accounted) and its measured
        energy (None: nothing measured it)."""
        ...

    def observe_intensity(
        self, zone: str, intensity_g_per_kwh: float, age_s: float, rung: str = "live"
    ) -> None:
        """The latest intensity of a zone, how old it is and the fallback rung it came from."""
        ...

    def observe_zones(self, zones: Collection[str]) -> None:
        """The zones the service plans in now (each refresh): the intensity of any other zone
        is no longer reported (a reload removed its regions)."""
        ...

    def observe_totals(self, totals: Mapping[str, float]) -> None:
        """The ledger's totals (:meth:`daemon.ledger.Ledger.outcome_totals`), at start and
        after each finished job: they survive restarts, unlike counters."""
        ...


class NullMetrics:
    """A :class:`MetricsSink` that records nothing."""

    def observe_queue(self, depth_by_state: Mapping[str, int]) -> None:
        """Ignored."""

    def observe_past_deadline(self, running: int) -> None:
        """Ignored."""

    def observe_decision(
        self,
        policy: str,
        action: str,
        expected_total_g: float | None,
        run_now_total_g: float | None,
    ) -> None:
        """Ignored."""

    def observe_started(
        self, policy: str, expected_total_g: float | None, run_now_total_g: float | None
    ) -> None:
        """Ignored."""

    def observe_outcome(
        self,
        job_id: str,
        state: str,
        measured_total_g: float | None,
        measured_energy_j: float | None = None,
    ) -> None:
        """Ignored."""

    def observe_intensity(
        self, zone: str, intensity_g_per_kwh: float, age_s: float, rung: str = "live"
    ) -> None:
        """Ignored."""

    def observe_zones(self, zones: Collection[str]) -> None:
        """Ignored."""

    def observe_totals(self, totals: Mapping[str, float]) -> None:
        """Ignored."""
