"""Build the intensity fallback chain from settings (the daemon's and the CLI's one wiring).

The Electricity Maps client gets plain arguments from ``settings.electricitymaps`` and its own
``requests.Session``; the cache lives in ``settings.signals.cache_dir`` or
``<state_dir>/cache/intensity``, falling back to ``~/.cache/carbond/intensity`` when that is not
writable (a normal user running the CLI), and to no cache at all, with a note, when neither is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypedDict

import requests
import structlog

from daemon.settings import Settings
from forecasts import (
    ElectricityMapsClient,
    ForecastsError,
    IntensityReading,
    IntensitySeries,
    SeriesCache,
    SignalChain,
    StaleHistory,
)
from forecasts.refresh import OUTAGE_PAUSE_S

__all__ = [
    "ChainAges",
    "SignalWiring",
    "build_signal_chain",
    "chain_ages",
    "refresh_signals",
    "resolve_cache_dir",
    "stale_history_problem",
]


class ChainAges(TypedDict):
    """The :class:`~forecasts.SignalChain` ages that ``signals.*`` sets (keyword arguments)."""

    live_max_age_s: float
    cache_max_age_s: float
    max_history_gap_s: float
    rescore_every_s: float


def chain_ages(settings: Settings) -> ChainAges:
    """The chain's ages from ``settings.signals``: the daemon's chain and ``carbond doctor``'s
    (which builds its own, creating no cache directory) take them from here."""
    sig = settings.signals
    return ChainAges(live_max_age_s=sig.live_max_age_s, cache_max_age_s=sig.cache_max_age_s,
                     max_history_gap_s=sig.max_history_gap_s,
                     rescore_every_s=sig.rescore_every_s)  # fmt: skip


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK | os.X_OK)


def resolve_cache_dir(settings: Settings, override: Path | None = None) -> tuple[Path | None, str]:
    """The cache directory to use and a note on how it was chosen.

    An explicit ``override`` (``--cache-dir``) or ``signals.cache_dir`` is used as given;
    otherwise ``<state_dir>/cache/intensity``, then ``~/.cache/carbond/intensity``.
    """
    explicit = override or settings.signals.cache_dir
    if explicit is not None:
        if _writable(explicit):
            return explicit, f"cache {explicit}"
        return None, f"cache directory {explicit} is not writable; running without a cache"
    default = settings.state_dir / "cache" / "intensity"
    if _writable(default):
        return default, f"cache {default}"
    home = Path.home() / ".cache" / "carbond" / "intensity"
    if _writable(home):
        return home, f"cache {home} ({default} is not writable)"
    return None, f"neither {default} nor {home} is writable; running without a cache"


@dataclass(slots=True)
class SignalWiring:
    """The chain and what must be closed with it."""

    chain: SignalChain
    cache_dir: Path | None
    notes: list[str] = field(default_factory=list)
    client: ElectricityMapsClient | None = None

    def close(self) -> None:
        """Close the provider's HTTP session."""
        if self.client is not None:
            self.client.close()

    def __enter__(self) -> SignalWiring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_signal_chain(
    settings: Settings,
    *,
    cache_dir: Path | None = None,
    traces: Mapping[str, IntensitySeries] | None = None,
    offline: bool = False,
) -> SignalWiring:
    """Build the chain: provider (when a token is set and not ``offline``), cache, traces."""
    em = settings.electricitymaps
    sig = settings.signals
    notes: list[str] = []
    client = None
    if offline:
        notes.append("offline: live API not used")
    elif em.token is None:
        notes.append("no Electricity Maps token (electricitymaps.token): live API not used")
    else:
        client = ElectricityMapsClient(
            requests.Session(),
            base_url=em.base_url,
            token=em.token.get_secret_value(),
            connect_timeout_s=em.connect_timeout_s,
            read_timeout_s=em.read_timeout_s,
            max_retries=em.max_retries,
            emission_factor_type=em.emission_factor_type,
        )
    directory, note = resolve_cache_dir(settings, cache_dir)
    notes.append(note)
    cache = SeriesCache(directory, max_points=sig.cache_max_points) if directory else None
    chain = SignalChain(
        provider=client,
        cache=cache,
        traces=traces,
        kind=em.emission_factor_type,
        **chain_ages(settings),
        # the pause stops the rest of a refresh asking a provider latest cannot reach; it
        # must not skip the next refresh (a recovery noticed a refresh late)
        outage_pause_s=min(OUTAGE_PAUSE_S, settings.intervals.refresh_s),
    )
    return SignalWiring(chain, directory, notes, client)


def stale_history_problem(stale: StaleHistory) -> str:
    """What a zone's too-old history is called where an operator reads it: the daemon's
    ``intensity:<zone>`` health problem (before what it plans on instead) and ``carbond
    doctor``'s signals line."""
    days = stale.max_gap_s / 86_400
    return (
        f"history too old: its newest point is for {stale.newest_at.isoformat()}, over "
        f"signals.max_history_gap_s ({days:g} day{'' if days == 1 else 's'}) before now"
    )


def refresh_signals(
    chain: SignalChain, zones: Iterable[str], now: datetime
) -> dict[str, IntensityReading]:
    """Refresh ``zones`` (network I/O), log one event per zone, return the current readings.

    Events: ``intensity_refreshed`` (zone, rung, intensity_g_per_kwh, age_s, stale, source)
    and ``intensity_refresh_problem`` (zone, problem) for each problem; ``intensity_missing``
    (zone, error) when no rung has a value. Never raises for a signal problem.
    """
    log = structlog.get_logger("carbond.signals")
    zones = list(zones)
    chain.refresh(zones, now)
    readings: dict[str, IntensityReading] = {}
    for zone in zones:
        for problem in chain.problems(zone):
            log.warning("intensity_refresh_problem", zone=zone, problem=problem)
        try:
            reading = chain.current(zone, now)
        except ForecastsError as e:
            log.error("intensity_missing", zone=zone, error=str(e))
            continue
        readings[zone] = reading
        log.info(
            "intensity_refreshed",
            zone=reading.zone,
            rung=reading.rung,
            intensity_g_per_kwh=reading.intensity_g_per_kwh,
            age_s=round(reading.age_s, 1),
            stale=reading.stale,
            source=reading.source,
        )
    return readings
