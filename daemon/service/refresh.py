"""The service's intensity refresh: every zone's forecast and current value, recorded.

:func:`refresh_intensity` runs under the :class:`~daemon.service.Service`'s lock (its
``refresh_intensity`` step, which then notes the time of the refresh); a zone whose provider fails
keeps its last forecast or falls back to the static annual figure, and ``health.json`` says so
(``intensity:<zone>``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, MutableMapping
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from daemon.intensity.providers import Reading, StaticIntensity
from daemon.intensity.signals import stale_history_problem
from forecasts import NO_PROVIDER, ForecastsError, SignalChain, StaleHistory
from policies import ZoneIntensity

if TYPE_CHECKING:
    from daemon.service.core import Service

__all__ = ["refresh_intensity"]

log = structlog.get_logger(__name__)

_NOT_A_FAILURE = frozenset({"ok", NO_PROVIDER})  # the chain's outcomes that are no failure


def refresh_intensity(
    service: Service,
    forecasts: MutableMapping[str, ZoneIntensity],
    now: datetime,
    stale_logged: MutableMapping[str, datetime],
) -> None:
    """Fetch every zone's forecast into ``forecasts`` (the service's, by zone) and its current
    value; record the value in the ledger. ``stale_logged``: the newest point of each zone's
    too-old history as last logged (the service's, kept between refreshes).

    A failing zone keeps its last forecast, or falls back to the static annual figure.
    """
    cfg = service.settings.intensity
    zones = sorted({gpu.device.zone for gpu in service.inventory})
    service.metrics.observe_zones(zones)  # a reload may have removed some
    failed = _log_failed_calls(service.intensity.refresh(zones, now))
    health = service.health
    for zone in zones:
        try:
            series = service.intensity.forecast(zone, now, cfg.horizon_s, cfg.step_s)
            reading = service.intensity.current(zone, now)
        except ForecastsError as exc:
            log.warning("intensity_refresh_failed", zone=zone, error=str(exc))
            health.set(
                f"intensity:{zone}",
                f"no intensity ({exc}); planning on the last forecast or the static annual figure",
                now,
            )
            if zone not in forecasts:
                with contextlib.suppress(ForecastsError):  # no figure: plan logs it
                    forecasts[zone] = StaticIntensity().forecast(
                        zone, now, cfg.horizon_s, cfg.step_s
                    )
            continue
        forecasts[zone] = series
        stale = _stale_history(service, zone, reading, now, stale_logged)
        if zone in failed:
            health.set(f"intensity:{zone}", f"provider failing ({failed[zone]}); "
                       f"planning on {_planned_on(reading)}", now)  # fmt: skip
        elif stale is not None:
            health.set(f"intensity:{zone}", f"{stale_history_problem(stale)}; planning on "
                       f"{_planned_on(reading)}", now)  # fmt: skip
        else:
            health.clear(f"intensity:{zone}")
        service.ledger.record_intensity(
            zone, reading.at, reading.intensity_g_per_kwh, reading.source, now
        )
        service.metrics.observe_intensity(
            zone, reading.intensity_g_per_kwh, reading.age_s, reading.rung
        )


def _stale_history(
    service: Service,
    zone: str,
    reading: Reading,
    now: datetime,
    logged: MutableMapping[str, datetime],
) -> StaleHistory | None:
    """The zone's history when it is too old to forecast from (the chain's
    :meth:`~forecasts.SignalChain.stale_history`; other sources have none), logged as
    ``intensity_history_stale`` when it starts or its newest point changes, not every
    refresh. A zone with no history at all (a fresh tokenless daemon) has none."""
    chain = service.intensity
    stale = chain.stale_history(zone, now) if isinstance(chain, SignalChain) else None
    if stale is None:
        logged.pop(zone, None)
    elif logged.get(zone) != stale.newest_at:
        logged[zone] = stale.newest_at
        log.warning(
            "intensity_history_stale",
            zone=zone,
            newest_at=stale.newest_at.isoformat(),
            gap_days=round(stale.gap_s / 86_400, 1),
            max_history_gap_s=stale.max_gap_s,
            rung=reading.rung,
        )
    return stale


def _planned_on(reading: Reading) -> str:
    """The rung, source and age of what the zone is planned on: ``the cache rung
    (electricitymaps, 0.4 h old)``. Until 2026-12-07 the source alone, ``electricitymaps``,
    which read as if the provider still answered while the chain served its cache."""
    return f"the {reading.rung} rung ({reading.source}, {reading.age_s / 3600:.1f} h old)"


def _log_failed_calls(outcome: object) -> dict[str, str]:
    """One ``intensity_provider_failed`` warning per zone whose provider calls failed; those
    problems by zone.

    ``outcome`` is what the intensity source's ``refresh`` returned: the chain's
    ``{zone: "ok" | problems}``; sources without a provider return None. The messages are the
    provider client's, which never carry the token or anything the server sent.
    """
    if not isinstance(outcome, Mapping):
        return {}
    failed = {}
    for zone, result in outcome.items():
        if isinstance(result, str) and result not in _NOT_A_FAILURE:
            log.warning("intensity_provider_failed", zone=zone, problem=result)
            failed[str(zone)] = result
    return failed
