"""The service for ``carbond run``, ``carbond demo`` and replay, wired from the settings around
a ledger and executors the caller owns: queue, inventory, intensity source, policy, sites and
the learned factors (:func:`build_service`); :mod:`daemon.assemble` builds the whole daemon
around it, and builds it again on SIGHUP.

Nothing here starts a thread or opens a socket; the intensity chain's HTTP session is closed by
``Service.close()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

import structlog

from daemon.errors import DaemonError
from daemon.executors.base import Executor
from daemon.intensity.providers import IntensityProvider, build_intensity
from daemon.intensity.signals import build_signal_chain
from daemon.inventory import Discover, build_inventory
from daemon.learning.factors import Learning
from daemon.ledger import Ledger
from daemon.measurement import JobMeasurement
from daemon.metrics.sink import MetricsSink
from daemon.planning import build_policy
from daemon.queue.ingest import Queue
from daemon.service import Service
from daemon.settings import Settings
from daemon.sites import SiteView, sites_of
from policies.footprint import DEFAULT_GPU_CATALOG, GpuCatalog
from policies.footprint.recalibration import Recalibration

__all__ = ["build_service", "configure_learning"]

log = structlog.get_logger(__name__)


def build_service(
    settings: Settings,
    ledger: Ledger,
    executors: Mapping[str, Executor],
    *,
    discover: Discover | None = None,
    intensity: IntensityProvider | None = None,
    metrics: MetricsSink | None = None,
    catalog: GpuCatalog = DEFAULT_GPU_CATALOG,
    measurement: JobMeasurement | None = None,
    learning: Learning | None = None,
) -> Service:
    """The service for ``settings``: queue in ``state_dir``, GPUs of ``regions`` (``discover``
    finds those declared ``"discover"``), ``intensity`` or the configured source (``chain``:
    the :mod:`forecasts` fallback chain from ``[electricitymaps]`` and ``[signals]``, closed by
    ``Service.close()``), and the configured policy (``run-now`` when its name is not
    registered). ``measurement`` meters jobs on this node's GPUs (:mod:`daemon.measurement`);
    ``learning`` holds the recalibration factors learned so far (:mod:`daemon.learning.factors`).

    Raises:
        UnknownGpuError: a GPU name the catalog does not know.
        PoliciesError: the policy rejects its parameters.
        DaemonError: a region names an executor that is not in ``executors``; a region's site
            cannot be built (:class:`~daemon.sites.SiteConfigError`).
    """
    missing = sorted({r.executor for r in settings.regions} - set(executors))
    if missing:
        known = ", ".join(sorted(executors)) or "none"
        raise DaemonError(f"regions use executor(s) {', '.join(missing)} but only {known} exist")
    on_close: list[Callable[[], None]] = []
    if intensity is None and settings.intensity.source == "chain":
        wiring = build_signal_chain(settings)
        for note in wiring.notes:
            log.info("intensity_chain", note=note)
        intensity, on_close = wiring.chain, [wiring.close]
    try:
        return Service(
            settings=settings,
            ledger=ledger,
            queue=Queue.from_settings(settings, ledger),
            executors=executors,
            inventory=build_inventory(settings.regions, catalog, discover),
            intensity=intensity or build_intensity(settings.intensity.source),
            policy=build_policy(
                settings.policy.name, settings.policy.params, settings.lifetime_years
            ),
            metrics=metrics,
            on_close=on_close,
            measurement=measurement,
            sites=SiteView(sites_of(settings)),
            learning=configure_learning(learning or Learning(), settings),
            catalog=catalog,
        )
    except BaseException:  # a reload that cannot be wired: its chain's HTTP session too
        for close in on_close:
            close()
        raise


def configure_learning(learning: Learning, settings: Settings) -> Learning:
    """``learning``, its factors judged from now on by the evidence ``settings.recalibration``
    asks for (``min_samples``, ``min_measured_s``) before the planner uses them; what it
    learned is kept. Whether a factor is in use is decided each time it is read, so a reload
    that lowers a threshold applies at the next plan. Returns ``learning``."""
    wanted = settings.recalibration
    config = replace(
        learning.recalibration.config,
        min_samples=wanted.min_samples,
        min_measured_s=wanted.min_measured_s,
    )
    learning.recalibration = Recalibration(config, learning.recalibration.factors)
    return learning
