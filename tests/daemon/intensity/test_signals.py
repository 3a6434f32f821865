"""The daemon's wiring of the fallback chain (``daemon.intensity.signals``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.intensity.signals import build_signal_chain, chain_ages
from daemon.settings import Settings
from forecasts.refresh import OUTAGE_PAUSE_S


@pytest.mark.parametrize(("refresh_s", "pause_s"), [(30.0, 30.0), (300.0, OUTAGE_PAUSE_S)])
def test_the_outage_pause_is_at_most_the_refresh_interval(
    tmp_path: Path, refresh_s: float, pause_s: float
) -> None:
    """A provider down at one refresh is asked again at the next: with ``refresh_s`` = 30 s
    until 2026-12-08 the 60 s pause skipped it, noticing a recovery 30 s late."""
    settings = Settings(state_dir=tmp_path, intervals={"refresh_s": refresh_s})
    with build_signal_chain(settings, offline=True) as wiring:
        assert wiring.chain.outage_pause_s == pause_s


def test_the_chain_ages_are_the_signals_settings(tmp_path: Path) -> None:
    """One place turns ``signals.*`` into the chain's ages, for the daemon's chain and
    ``carbond doctor``'s (which repeated them by hand until 2026-12-08)."""
    ages = {"live_max_age_s": 60.0, "cache_max_age_s": 120.0,
            "max_history_gap_s": 86_400.0, "rescore_every_s": 3600.0}  # fmt: skip
    settings = Settings(state_dir=tmp_path, signals=ages)
    assert chain_ages(settings) == ages
    with build_signal_chain(settings, offline=True) as wiring:
        assert {name: getattr(wiring.chain, name) for name in ages} == ages
