"""Trace series played as if they were the live provider, at a clock the caller moves.

Replay can then drive the very same :class:`~forecasts.chain.SignalChain` as the daemon:
``provider.now = t; chain.refresh(zones, t); chain.current(zone, t)`` gives ``live``
readings made only of trace points that start at or before ``t`` (the current hour is what
the live API's ``latest`` returns too). The provider has no forecasts of its own: the chain
forecasts from the history it has collected, exactly as it does live.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from forecasts.electricitymaps import ProviderReading
from forecasts.errors import OutOfRangeError, ProviderServerError, ProviderZoneError
from forecasts.series import IntensitySeries, SignalKind, check_same_kind

__all__ = ["TraceProvider"]

HISTORY_S: Final = 24 * 3600  # what the live /history endpoint returns


class TraceProvider:
    """An :class:`~forecasts.readings.IntensityProvider` over trace series.

    Args:
        traces: series per zone (one kind).
        now: the simulated time; set :attr:`now` before each refresh.

    ``latest`` raises :class:`ProviderServerError` when ``now`` is outside the trace or its
    point is missing, like a provider outage; unknown zones raise :class:`ProviderZoneError`.
    """

    name: Final = "trace"

    def __init__(self, traces: Mapping[str, IntensitySeries], now: datetime | None = None) -> None:
        self._traces = {zone.strip().upper(): series for zone, series in traces.items()}
        self._kind: SignalKind = check_same_kind(*self._traces.values())
        self.now = now or datetime.fromtimestamp(0, tz=UTC)

    @property
    def kind(self) -> SignalKind:
        """The traces' signal kind."""
        return self._kind

    def _trace(self, zone: str) -> IntensitySeries:
        try:
            return self._traces[zone.strip().upper()]
        except KeyError:
            raise ProviderZoneError(f"no trace for zone {zone!r}") from None

    def latest(self, zone: str) -> ProviderReading:
        """The trace point containing :attr:`now`.

        Raises:
            ProviderZoneError: no trace for the zone.
            ProviderServerError: ``now`` outside the trace, or that point is missing.
        """
        trace = self._trace(zone)
        try:
            value = trace.at(self.now)
        except OutOfRangeError as e:
            raise ProviderServerError(f"latest for {zone}: {e}") from e
        k = trace.index_of(self.now)
        if math.isnan(value):  # a gap in the trace
            raise ProviderServerError(f"latest for {zone}: the trace has no value at {self.now}")
        return ProviderReading(
            zone=trace.zone,
            intensity_g_per_kwh=value,
            at=trace.start + timedelta(seconds=trace.step_s * k),
            is_estimated=bool(trace.is_estimated[k]),
            kind=trace.kind,
            fetched_at=self.now,
            source=f"trace:{trace.source}",
        )

    def history(self, zone: str) -> IntensitySeries:
        """The trace's last 24 h of points starting before :attr:`now`.

        Raises:
            ProviderZoneError: no trace for the zone.
            ProviderServerError: the trace has nothing in that window.
        """
        trace = self._trace(zone)
        window = trace.slice(self.now - timedelta(seconds=HISTORY_S), self.now)
        if len(window) == 0:
            raise ProviderServerError(f"history for {zone}: the trace has no points before now")
        return window.replace(source=f"trace:{trace.source}", fetched_at=self.now)

    def forecast(self, zone: str, horizon_hours: int | None = None) -> IntensitySeries:
        """Traces hold no provider forecasts.

        Raises:
            ProviderZoneError: always (the chain then stops asking for a while).
        """
        self._trace(zone)
        raise ProviderZoneError(f"forecast for {zone}: a trace has no provider forecast")
