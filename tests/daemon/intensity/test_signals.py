"""The daemon's wiring of the fallback chain (``daemon.intensity.signals``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.intensity.signals import build_signal_chain
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
