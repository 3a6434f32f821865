"""Building a :class:`~daemon.service.Service` from the settings: the parts the composition
root (``carbond run``, ``carbond demo``, replay) does not choose itself.

The caller still owns the ledger and the executors (it opens, starts and closes them); this
only wires the queue, inventory, intensity source and policy from ``settings``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog

from daemon.errors import DaemonError
from daemon.executors.base import Executor
from daemon.intensity import IntensityProvider, build_intensity
from daemon.inventory import Discover, build_inventory
from daemon.ledger import Ledger
from daemon.measurement import JobMeasurement
from daemon.metrics_sink import MetricsSink
from daemon.planning import build_policy
from daemon.queue import Queue
from daemon.service import Service
from daemon.settings import Settings
from daemon.signals import build_signal_chain
from policies.footprint import DEFAULT_GPU_CATALOG, GpuCatalog

__all__ = ["build_service"]

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
) -> Service:
    """The service for ``settings``: queue in ``state_dir``, GPUs of ``regions`` (``discover``
    finds those declared ``"discover"``), ``intensity`` or the configured source (``chain``:
    the :mod:`forecasts` fallback chain from ``[electricitymaps]`` and ``[signals]``, closed by
    ``Service.close()``), and the configured policy (``run-now`` when its name is not
    registered). ``measurement`` meters jobs on this node's GPUs (:mod:`daemon.measurement`).

    Raises:
        UnknownGpuError: a GPU name the catalog does not know.
        PoliciesError: the policy rejects its parameters.
        DaemonError: a region names an executor that is not in ``executors``.
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
    return Service(
        settings=settings,
        ledger=ledger,
        queue=Queue.from_settings(settings, ledger),
        executors=executors,
        inventory=build_inventory(settings.regions, catalog, discover),
        intensity=intensity or build_intensity(settings.intensity.source),
        policy=build_policy(settings.policy.name, settings.policy.params),
        metrics=metrics,
        on_close=on_close,
        measurement=measurement,
    )
