"""The composition root: the daemon's object graph for ``carbond run``, ``carbond demo`` and
replay, built once from the settings.

:func:`build_daemon` is the whole daemon: it opens the ledger, chooses the executors and GPU
discovery, wires the service around them (:func:`daemon.assemble_service.build_service`: queue,
inventory, intensity source, policy) and starts the GPU measurement; :func:`rebuild_service`
wires a new service on SIGHUP.

Nothing here starts a thread or opens a socket; the ledger's SQLite file and (when a region
discovers its GPUs) the GPU backend are opened, and :meth:`Daemon.close` releases them.
"""

from __future__ import annotations

import importlib
import os
import pwd
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from daemon.assemble_service import build_service, configure_learning
from daemon.catalog import gpu_catalog
from daemon.errors import DaemonError
from daemon.executors.base import Executor
from daemon.executors.local import LocalExecutor
from daemon.executors.local_cgroup import job_cgroups
from daemon.executors.local_cgroup_caps import JobCaps
from daemon.executors.simulated import SimulatedExecutor
from daemon.executors.slurm import SlurmExecutor, SubprocessRunner, Target
from daemon.intensity.providers import IntensityProvider
from daemon.inventory import Discover
from daemon.learning.factors import refold_changed
from daemon.ledger import Ledger
from daemon.measurement import JobMeasurement, start_measurement
from daemon.metrics.sink import MetricsSink
from daemon.service import Service
from daemon.settings import LocalExecutorSettings, RegionSettings, Settings
from daemon.statedir import LEDGER_NAME
from daemon.states import WAITING_STATES
from daemon.supervision.loop import Intervals

__all__ = [
    "LOG_DIR_NAME",
    "Daemon",
    "build_daemon",
    "build_executors",
    "build_slurm_executor",
    "gpu_discovery",
    "intervals_of",
    "job_caps",
    "rebuild_service",
    "slurm_path",
    "with_slurm_discovery",
]

log = structlog.get_logger(__name__)

LOG_DIR_NAME = "logs"  # the service puts every job's log_dir here


def build_executors(settings: Settings, follow: Collection[str] = ()) -> dict[str, Executor]:
    """Every executor a region may name, configured from ``settings.executors`` (``slurm``
    only when a region uses it, or when it is in ``follow``: the executors the ledger's
    unfinished runs are on, :func:`_unfinished_on`)."""
    local = settings.executors.local
    sim = settings.executors.simulated
    slurm = build_slurm_executor(settings, follow="slurm" in follow)
    # The jobs' cgroups only where jobs run here: a daemon (or the demo) with no local region
    # and no local run to follow neither probes nor moves itself into a leaf.
    runs_local = "local" in follow or any(r.executor == "local" for r in settings.regions)
    return {
        **({"slurm": slurm} if slurm is not None else {}),
        "local": LocalExecutor(
            grace_s=local.grace_s,
            allow_root_jobs=local.allow_root_jobs,
            log_dir=settings.state_dir / LOG_DIR_NAME,
            job_limits=local.limits.as_rlimits(),
            cgroups=job_cgroups(local.cgroup, caps=job_caps(local)) if runs_local else None,
        ),
        "simulated": SimulatedExecutor(
            truth_factor=sim.truth_factor,
            noise_sigma=sim.noise_sigma,
            failure_rate=sim.failure_rate,
            seed=sim.seed,
            min_duration_s=_SIMULATED_MIN_DURATION_S,
        ),
    }


def job_caps(local: LocalExecutorSettings) -> JobCaps:
    """The caps of each local job's cgroup that ``[executors.local]`` sets."""
    return JobCaps.of_settings(
        memory_max_bytes=local.memory_max_bytes,
        memory_high_bytes=local.memory_high_bytes,
        memory_swap_max_bytes=local.memory_swap_max_bytes,
        pids_max=local.pids_max,
    )


def _unfinished_on(ledger: Ledger) -> set[str]:
    """The executors of the ledger's runs not finished yet: running, held for a waiting
    job (a Slurm job held until its planned start), or still being stopped after their job
    ended (a lost GPU's: :meth:`daemon.endings.stopping.RunStops.resume_stops`)."""
    held = ledger.runs(WAITING_STATES).values()
    stopping = (s.run for s in ledger.stopping_runs())
    return {run.executor for run in (*ledger.active_runs(), *held, *stopping)}


_SIMULATED_MIN_DURATION_S = 0.001
"""The floor on the daemon's simulated runs (s): they last their raw estimate × truth, however
short (the executor's default floor, 1 s, stays the replay's). Measured, a 0.18 s job floored
to 1 s taught its (model, GPU type) energy and time factors of 4 (the clip), which the pair's
longer jobs were then planned with."""


def slurm_path(settings: Settings) -> str:
    """``PATH`` of the Slurm commands the daemon runs: ``executors.slurm.bin_dir`` first when
    set (the commands themselves are run from it by their full path)."""
    bin_dir = settings.executors.slurm.bin_dir
    return f"{bin_dir}:/usr/bin:/bin" if bin_dir else "/usr/local/bin:/usr/bin:/bin"


def build_slurm_executor(settings: Settings, *, follow: bool = False) -> SlurmExecutor | None:
    """The Slurm executor of the ``executor = "slurm"`` regions. Without such regions: None,
    or with ``follow`` (jobs carbond handed to Slurm are not finished yet: a restart whose
    config dropped the Slurm regions), one with no region, which only follows those jobs to
    their end (``squeue``/``sacct``), cancels them when asked and withdraws the held ones;
    nothing is submitted to it, and it discovers no GPUs."""
    regions = [r for r in settings.regions if r.executor == "slurm" and r.slurm is not None]
    if not regions and not follow:
        return None
    cfg = settings.executors.slurm
    targets = {}
    for region in regions:
        s = region.slurm
        assert s is not None
        targets[region.name] = Target(s.partition, s.cluster, s.account, s.qos, s.gres,
                                      s.sbatch_options)  # fmt: skip
    path = slurm_path(settings)
    return SlurmExecutor(
        targets,
        runner=SubprocessRunner(
            timeout_s=cfg.command_timeout_s,
            accounting_timeout_s=cfg.accounting_timeout_s,
            path=path,
        ),
        gpu_names={r.name: r.slurm.gpu_types for r in regions if r.slurm is not None},
        known_gpus=gpu_catalog(settings).names(),
        bin_dir=cfg.bin_dir,
        pending_grace_s=cfg.pending_grace_s,
        cut_short_limit_s=cfg.cut_short_limit_s,
        allow_root_jobs=cfg.allow_root_jobs,
        log_dir=settings.state_dir / LOG_DIR_NAME,
        submitter=_submitter(),
    )


def _submitter() -> str | None:
    """The user every Slurm job is submitted as: this process's, where it is not root (it
    submits its own user's jobs only); None for root (each job's owner) or a uid without a
    passwd entry."""
    if (uid := os.geteuid()) == 0:
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def with_slurm_discovery(
    discover: Discover | None, executors: Mapping[str, Executor]
) -> Discover | None:
    """``discover`` extended to the ``executor = "slurm"`` regions (their partition's nodes,
    asked to Slurm); a region Slurm does not answer for starts without GPUs (logged as
    ``slurm_discovery_failed``): the service asks again each round until Slurm answers
    (:meth:`SlurmExecutor.rediscover`), a reload asks again too."""
    slurm = executors.get("slurm")
    if not isinstance(slurm, SlurmExecutor):
        return discover

    def both(region: RegionSettings) -> Sequence[tuple[int, str]]:
        if region.executor != "slurm":
            return discover(region) if discover is not None else []
        try:
            return slurm.discover(region.name)
        except DaemonError as exc:
            log.error("slurm_discovery_failed", region=region.name, error=str(exc))
            return []

    return both


def _no_op() -> None:
    """Nothing to release."""


def gpu_discovery(settings: Settings) -> tuple[Discover | None, Callable[[], None]]:
    """NVML discovery for regions declaring ``gpus = "discover"``, and how to release it.

    Uses the GPU backend (``daemon.gpu``, ``gpu.backend`` in the settings) when this build has
    one; without it such regions get no GPU (``gpu_backend_missing`` is logged). All
    discovering regions see this node's GPUs, so declare at most one per node.

    Raises:
        DaemonError: the backend is configured but cannot list the GPUs.
    """
    if not any(r.gpus == "discover" and r.executor != "slurm" for r in settings.regions):
        return None, _no_op
    try:
        factory = importlib.import_module("daemon.gpu.factory")
    except ModuleNotFoundError:
        log.warning("gpu_backend_missing", reason="this build has no daemon.gpu")
        return None, _no_op
    backend = factory.start_backend(settings.gpu, gpu_catalog(settings))
    # a GPU in MIG mode is measured but never scheduled (gpu_not_schedulable says so)
    found: Sequence[tuple[int, str]] = [
        (d.index, d.name) for d in factory.schedulable(backend.devices())
    ]
    log.info("gpus_discovered", backend=backend.name, gpus=[name for _, name in found])

    def discover(region: RegionSettings) -> Sequence[tuple[int, str]]:
        return found

    close: Callable[[], None] = backend.close
    return discover, close


def intervals_of(settings: Settings) -> Intervals:
    """The loop's intervals from ``settings.intervals``."""
    cfg = settings.intervals
    return Intervals(
        ingest_s=cfg.ingest_s,
        refresh_intensity_s=cfg.refresh_s,
        plan_s=cfg.plan_s,
        reconcile_s=cfg.reconcile_s,
    )


@dataclass(slots=True)
class Daemon:
    """The open parts of a daemon; :meth:`close` releases them."""

    settings: Settings
    ledger: Ledger
    executors: dict[str, Executor]
    service: Service
    discover: Discover | None = None
    release: Callable[[], None] = _no_op
    measurement: JobMeasurement | None = None

    def close(self) -> None:
        """Close the service (its signal chain), the GPU measurement, the GPU backend and the
        ledger."""
        try:
            self.service.close()
        finally:
            if self.measurement is not None:
                self.measurement.close()
            self.release()
            self.ledger.close()


def rebuild_service(daemon: Daemon, settings: Settings, metrics: MetricsSink | None) -> Service:
    """A new service for ``settings`` around the same ledger, executors and GPUs (SIGHUP),
    with the learned factors (a GPU type whose runs teach otherwise under the new inventory
    refolded from the ledger, :func:`daemon.learning.factors.refold_changed`); the previous service
    is closed once the new one is built (a failure to close it is logged as
    ``reload_close_failed``; the new service is returned all the same).

    Raises:
        DaemonError / PoliciesError / UnknownGpuError: the new settings cannot be wired.
    """
    service = build_service(
        settings,
        daemon.ledger,
        daemon.executors,
        discover=daemon.discover,
        metrics=metrics,
        catalog=gpu_catalog(settings),
        learning=daemon.service.learning,  # learned factors survive a reload
    )
    if daemon.measurement is not None:  # the same GPUs and learned factors across reloads
        daemon.measurement.keep_only(service.inventory)
        service.measurement = daemon.measurement
    # the types whose runs teach otherwise now (became mixed...) get what a restart would give
    refold_changed(service.learning, daemon.ledger, daemon.service.inventory, service.inventory)
    service.health = daemon.service.health  # problems outlive a reload until they end
    service.take_over_runs(daemon.service)  # removed GPUs runs hold, cancels sent, stopping
    service.launch_clock = daemon.service.launch_clock
    if service.sites is not None and daemon.service.sites is not None:
        service.sites.carry_over(daemon.service.sites)  # battery state, on-site share history
    previous, daemon.service, daemon.settings = daemon.service, service, settings
    try:
        previous.close()
    except Exception:  # the new service is in use now: its caller must get it back
        log.exception("reload_close_failed")
    return service


def build_daemon(
    settings: Settings,
    *,
    metrics: MetricsSink | None = None,
    executors: Mapping[str, Executor] | None = None,
    intensity: IntensityProvider | None = None,
    discover: Discover | None = None,
    gpu_clock: Callable[[], float] | None = None,
    launch_clock: Callable[[], datetime] | None = None,
) -> Daemon:
    """Open the ledger in ``settings.state_dir`` and build the service around it.

    ``executors`` default to :func:`build_executors`; ``discover`` to :func:`gpu_discovery`.
    GPU measurement (:func:`daemon.measurement.start_measurement`) follows ``gpu_clock``
    (monotonic seconds of the service's clock; default the wall clock, with the sampler
    thread; a simulated clock runs without it). ``launch_clock``: the service's
    :attr:`~daemon.service.Service.launch_clock` (``carbond run``: the wall clock).

    Raises:
        LedgerError: the ledger cannot be opened.
        DaemonError / PoliciesError / UnknownGpuError: the settings cannot be wired.
    """
    release = _no_op
    if discover is None:
        discover, release = gpu_discovery(settings)
    try:
        ledger = Ledger.open(settings.state_dir / LEDGER_NAME)
    except BaseException:
        release()
        raise
    try:
        if executors is None:
            executors = build_executors(settings, follow=_unfinished_on(ledger))
        chosen = dict(executors)
        discover = with_slurm_discovery(discover, chosen)
        service = build_service(
            settings,
            ledger,
            chosen,
            discover=discover,
            intensity=intensity,
            metrics=metrics,
            catalog=gpu_catalog(settings),
        )
        measurement = start_measurement(
            settings,
            gpu_catalog(settings),
            service.inventory,
            clock=gpu_clock or time.monotonic,
            sample=gpu_clock is None,
        )
        if measurement is not None:  # its learning is the service's from now on
            configure_learning(measurement.learning, settings)
        service.measurement = measurement
        service.launch_clock = launch_clock
    except BaseException:
        ledger.close()
        release()
        raise
    return Daemon(settings, ledger, chosen, service, discover, release, measurement)
