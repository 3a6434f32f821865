"""``carbond run``: the daemon in the foreground (under systemd: ``Type=notify``).

The composition root of the long-running service: settings -> logging -> metrics ->
ledger, queue, executors, GPU inventory, intensity source, policy -> service -> loop.
On SIGHUP the settings are loaded again; a valid new config rebuilds the service around the
same ledger and executors (so running jobs stay tracked), an invalid one is logged
(``reload_rejected`` with one problem per line) and the running config is kept.
``state_dir`` cannot change, nor Slurm regions or a first ``gpus = "discover"`` region be
added; ``metrics``, ``executors``, ``gpu`` and ``[regions.slurm]`` changes need a restart
(``reload_needs_restart`` names them); GPUs a reload adds, or gives another simulated GPU
type or catalog power (``[catalog.gpus.X]`` ``idle_w``, ``tdp_w``, ``memory_gb``), are metered
from the next restart (``reload_gpus_unmetered`` names them).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from daemon.assemble import build_daemon, intervals_of, rebuild_service
from daemon.cli.context import add_common_options
from daemon.doctor.token_file import describe_exposed_token, exposed_token_mode
from daemon.errors import DaemonError, UsageError
from daemon.inventory import InventoryGpu
from daemon.logs import configure_logging
from daemon.measurement import JobMeasurement
from daemon.metrics.prometheus import Metrics
from daemon.settings import (
    ConfigError,
    Settings,
    SlurmRegionSettings,
    config_path,
    load_settings,
    refuse_shared_local_gpus,
)
from daemon.statedir import LEDGER_NAME, ensure_safe_state_dir, lock_state_dir
from daemon.supervision.health import Health
from daemon.supervision.loop import Intervals, ServiceLoop, Steps
from daemon.supervision.sdnotify import Notifier
from daemon.supervision.warmup import PlannerWarmup
from policies import PoliciesError

__all__ = [
    "discovery_added",
    "metered_ids",
    "missing_regions",
    "register",
    "restart_only_changes",
    "run_daemon",
    "slurm_regions_added",
    "unmetered_by_reload",
    "warn_token_readable",
]

log = structlog.get_logger(__name__)


def register(subparsers: Any) -> None:
    """Add ``run``."""
    run = subparsers.add_parser(
        "run",
        help="run the daemon in the foreground (systemd: Type=notify, SIGHUP reloads)",
        description="Run the daemon in the foreground (what the systemd unit starts): ingest "
        "the queue files, plan, start and reconcile jobs on the intervals.* timers, until "
        "SIGTERM (exit 0). SIGHUP reloads the config. Logs JSON lines on stderr unless it is a "
        "terminal. Exit 2 for an invalid config or one without [[regions]]; exit 1 when another "
        "daemon holds the state dir. docs/operations.md.",
    )
    add_common_options(run, json_flag=False)
    run.add_argument(
        "--state-dir", type=Path, default=None, help="override state_dir from the settings"
    )
    run.set_defaults(func=_run)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {"state_dir": args.state_dir} if args.state_dir is not None else {}


def _run(args: argparse.Namespace) -> int:
    overrides = _overrides(args)
    settings = _load(args.config, overrides)
    if problem := missing_regions(settings, config_path(args.config)):
        raise UsageError(problem)
    _configure_logging(settings)
    warn_token_readable(config_path(args.config))

    def reload() -> Settings:
        new = _load(args.config, overrides)
        warn_token_readable(config_path(args.config))
        return new

    return run_daemon(settings, reload)


def _load(config: Path | None, overrides: dict[str, Any]) -> Settings:
    """The settings, at start and on each SIGHUP: ``load_settings`` and what only a daemon
    that starts jobs refuses (two local regions on one GPU of this node: ConfigError)."""
    settings = load_settings(config, **overrides)
    refuse_shared_local_gpus(settings)
    return settings


def warn_token_readable(config: Path | None) -> None:
    """Log ``config_token_readable`` (the file, its mode, never the token) when ``config``
    holds the Electricity Maps token and every user can read it: ``carbond doctor``'s check
    (:mod:`daemon.doctor.token_file`), at start and on each reload, since the daemon starts
    with such a file (until 2026-12-07 silently: every user's job could read the token)."""
    mode = exposed_token_mode(config)
    if config is not None and mode is not None:
        log.warning("config_token_readable", file=str(config), mode=f"{mode:04o}",
                    problem=describe_exposed_token(config, mode))  # fmt: skip


def missing_regions(settings: Settings, config: Path | None) -> str | None:
    """Why the daemon must not run with ``settings`` (no region: it would accept every job and
    fail each one), in one line naming the config; None when there is a region."""
    if settings.regions:
        return None
    where = str(config) if config is not None else "no config file, no CARBOND_REGIONS"
    return (
        f"no [[regions]] configured ({where}): the daemon would accept jobs and fail every one; "
        "declare at least one region (name, zone, executor, gpus) as in carbond.example.toml"
    )


# Sections a reload cannot apply: the metrics endpoint, the executors and the GPU backend and
# sampler are built once, at start-up, and outlive every rebuilt service; the ledger is
# opened (and made private) once.
RESTART_ONLY = ("metrics", "executors", "gpu", "ledger")
RESTART_NOTE = "changed in the config, but they keep their start-up values until a restart"
UNMETERED_NOTE = (
    "added, or given another GPU type or (simulated GPUs) another catalog idle_w, tdp_w or "
    "memory_gb, by the reload on an executor whose GPUs carbond meters; the GPU meter is set "
    "up at start-up: their jobs' energy is estimated until a restart"
)


def metered_ids(
    measurement: JobMeasurement | None, inventory: Sequence[InventoryGpu]
) -> frozenset[str]:
    """The device ids of ``inventory`` that ``measurement`` meters (before a reload)."""
    if measurement is None:
        return frozenset()
    return frozenset(gpu.device_id for gpu in inventory if measurement.measures((gpu,)))


def unmetered_by_reload(
    measurement: JobMeasurement | None,
    before: Sequence[InventoryGpu],
    metered: frozenset[str],
    after: Sequence[InventoryGpu],
) -> list[str]:
    """The device ids of ``after`` (a reload's inventory), on an executor whose GPUs
    ``measurement`` metered in ``before`` (the ids ``metered`` then), that it does not meter
    now: those ``before`` did not have, and those whose simulated GPU type, or its catalog
    power or memory, the reload changed (:meth:`JobMeasurement.keep_only` stops metering them:
    their simulated device, built at start-up, draws the old GPU's power). A restart would
    meter them; until then their jobs end ``estimated``. A GPU not metered before the reload
    either is not named again."""
    if measurement is None:
        return []
    executors = {gpu.executor for gpu in before if gpu.device_id in metered}
    unmetered_before = {gpu.device_id for gpu in before} - metered
    return sorted(
        gpu.device_id
        for gpu in after
        if gpu.executor in executors
        and gpu.device_id not in unmetered_before
        and not measurement.measures((gpu,))
    )


def _slurm_targets(settings: Settings) -> dict[str, SlurmRegionSettings | None]:
    return {r.name: r.slurm for r in settings.regions if r.executor == "slurm"}


def restart_only_changes(started: Settings, new: Settings) -> list[str]:
    """The sections of :data:`RESTART_ONLY` that ``new`` changes from the settings the daemon
    started with (still in effect whatever was reloaded since), then each Slurm region whose
    ``[regions.slurm]`` changed (the Slurm executor keeps its start-up partitions)."""
    kept = [name for name in RESTART_ONLY if getattr(new, name) != getattr(started, name)]
    before = _slurm_targets(started)
    kept += [f"regions.{name}.slurm" for name, target in _slurm_targets(new).items()
             if name in before and before[name] != target]  # fmt: skip
    return kept


def slurm_regions_added(started: Settings, new: Settings) -> str | None:
    """Why ``new`` cannot be reloaded into a daemon started with ``started``: it adds Slurm
    regions, which the Slurm executor built at start-up would refuse every job of; None when
    it adds none."""
    added = sorted(set(_slurm_targets(new)) - set(_slurm_targets(started)))
    if not added:
        return None
    return (
        f"regions {', '.join(added)}: a region on Slurm is set up when carbond starts; "
        "restart carbond to add one"
    )


def _discovering(settings: Settings) -> list[str]:
    return [r.name for r in settings.regions if r.gpus == "discover" and r.executor != "slurm"]


def discovery_added(started: Settings, new: Settings) -> str | None:
    """Why ``new`` cannot be reloaded into a daemon started with ``started``: it declares
    ``gpus = "discover"`` on this node where ``started`` did not, and NVML is opened only when
    carbond starts (the region would have no GPU, and its jobs would be rejected); None
    otherwise."""
    added = _discovering(new)
    if not added or _discovering(started):
        return None
    return (
        f'regions {", ".join(sorted(added))}: gpus = "discover" reads this node\'s GPUs through '
        "NVML, which carbond opens when it starts; restart carbond to add one"
    )


def _configure_logging(settings: Settings) -> None:
    fmt = settings.log.format
    configure_logging(level=settings.log.level, json=None if fmt == "auto" else fmt == "json")
    # APScheduler logs every firing at INFO; the loop logs what matters itself.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.root.level))


def run_daemon(
    settings: Settings,
    load: Callable[[], Settings] | None = None,
    notifier: Notifier | None = None,
) -> int:
    """Run the daemon until SIGTERM/SIGINT; return the exit code.

    Args:
        settings: the settings to start with.
        load: called on SIGHUP to build new settings (raises ``ConfigError`` when invalid);
            None disables reloading.
        notifier: systemd notifications (default: from ``$NOTIFY_SOCKET``).

    Raises:
        DaemonError: the ledger or the state dir cannot be set up (a metrics port that
            cannot be bound is logged, not raised: :func:`_start_metrics`), the state dir is
            unsafe (:mod:`daemon.statedir`: writable by someone else), or another
            daemon runs with it.
    """
    ensure_safe_state_dir(settings.state_dir)
    lock = lock_state_dir(settings.state_dir)
    try:
        return _run_locked(settings, load, notifier)
    finally:
        os.close(lock)


def _start_metrics(metrics: Metrics, port: int, health: Health) -> None:
    """Serve ``/metrics``; a port that cannot be bound is logged (``metrics_unavailable``) and
    the daemon runs on without it: any local user may bind an unprivileged port on 127.0.0.1
    first, and the jobs must not wait on the metrics (until 2026-12-07 ``carbond run`` stopped
    at start, and a restart could never come up while that user held the port). It is also a
    ``metrics`` problem in ``health.json`` for as long as the daemon runs, so ``carbond doctor``
    fails it: until 2026-12-07 doctor passed such a daemon, its metrics line too when what held
    the port was a carbond of another state dir (whose series Prometheus then scraped)."""
    address = f"127.0.0.1:{port}"
    try:
        bound = metrics.start(port)
    except DaemonError as exc:
        log.error(
            "metrics_unavailable",
            address=address,
            error=str(exc),
            note="the daemon runs without /metrics; carbond doctor says what holds the port",
        )
        health.set(
            "metrics",
            f"running without /metrics: cannot listen on {address} ({exc.__cause__ or exc}); "
            "what answers there is not this daemon: free the port or change metrics.port, "
            "then restart carbond",
            datetime.now(UTC),
        )
        return
    log.info("metrics_listening", address=f"127.0.0.1:{bound}")


def _private_ledger(path: Path) -> None:
    """``[ledger] private = true``: the ledger made the daemon's alone before it is opened
    (:func:`daemon.ledger.privacy.make_private`), logged when it was open to others."""
    from daemon.ledger.privacy import make_private

    if found := make_private(path):
        log.warning(
            "ledger_made_private",
            files={str(file): f"{mode:04o}" for file, mode in found},
            note="moved to fresh 0600 files: descriptors other users opened before see the "
            "old ones only",
        )


def _run_locked(
    settings: Settings, load: Callable[[], Settings] | None, notifier: Notifier | None
) -> int:
    if settings.ledger.private:
        _private_ledger(settings.state_dir / LEDGER_NAME)
    metrics = Metrics()
    daemon = build_daemon(settings, metrics=metrics, launch_clock=lambda: datetime.now(UTC))
    metrics.observe_policy(daemon.service.policy.name)
    metrics.observe_source(settings.intensity.source)
    notifier = notifier or Notifier()
    try:
        if settings.metrics.port:
            _start_metrics(metrics, settings.metrics.port, daemon.service.health)
        notifier.open()
        daemon.service.start(datetime.now(UTC))
        warmup = PlannerWarmup(settings)

        def reload() -> tuple[Steps, Intervals] | None:
            if load is None:
                return None
            try:
                new: Settings = load()
            except ConfigError as exc:
                log.error("reload_rejected", problems=exc.problems)
                return None
            if new.state_dir != daemon.settings.state_dir:
                log.error("reload_rejected", problems=["state_dir cannot change; restart"])
                return None
            if problem := (
                missing_regions(new, None)
                or slurm_regions_added(settings, new)
                or discovery_added(settings, new)
            ):
                log.error("reload_rejected", problems=[problem])
                return None
            before = daemon.service.inventory
            metered = metered_ids(daemon.measurement, before)  # before keep_only drops any
            try:
                service = rebuild_service(daemon, new, metrics)
            except (DaemonError, PoliciesError) as exc:  # valid alone, not here: a site's CSV
                log.error("reload_rejected", problems=[str(exc)])
                return None
            _configure_logging(new)
            metrics.observe_policy(service.policy.name)
            metrics.observe_source(new.intensity.source)
            log.info("reload_settings", policy=service.policy.name, regions=len(new.regions))
            if kept := restart_only_changes(settings, new):
                log.warning("reload_needs_restart", sections=kept, note=RESTART_NOTE)
            if unmetered := unmetered_by_reload(
                daemon.measurement, before, metered, service.inventory
            ):
                log.warning("reload_gpus_unmetered", gpus=unmetered, note=UNMETERED_NOTE)
            warmup.follow(new)  # a new policy compiles in a thread, its plans deferred
            return service, intervals_of(new)

        loop = ServiceLoop(
            daemon.service,
            intervals_of(settings),
            notifier=notifier,
            sink=metrics,
            reload=reload,
            warmup=warmup,
        )
        # SIGTERM must end a wait for another process's lock on the ledger (a user's on the
        # -shm, an sqlite3 shell's write transaction): else the stop waits on their lock.
        daemon.ledger.stop_waiting_when(loop.stop_requested)
        return loop.run()
    finally:
        notifier.close()
        metrics.close()
        daemon.close()
