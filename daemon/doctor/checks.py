"""``carbond doctor``'s checks: each returns one pass/fail/skip line, nothing raises.

Checks, in order: ``config`` (the settings load, as ``carbond run`` loads them: no two local
regions on one GPU of this node, :mod:`daemon.settings.local_gpus`; and every region's site
builds: its measured CSVs read, its zone its own), ``state_dir``, ``ledger``, ``policy``,
``gpus`` (regions and their devices), ``nvml``
(through the GPU backend when this build has one), ``slurm`` (each
``executor = "slurm"`` region's partition asked as ``carbond run`` asks it, and its jobs
tried with ``sbatch --test-only``), ``signals`` (each
zone's intensity source, whether an Electricity Maps token is set, never its value, and
whether a configured ``signals.cache_dir`` can be written),
``metrics`` (the endpoint's port is free, or served by a running carbond),
``queue`` (queue file owner and mode, unfinished trailing line, backlog, rejected lines,
spool files: :mod:`daemon.doctor.queue_check`),
``wrapper`` (the job wrapper starts under ``python -I``; each ``[executors.local.limits]``
value within the daemon's hard limit), ``cgroup`` (whether local jobs get cgroups of their
own: :mod:`daemon.doctor.cgroup`) and ``health`` (the running daemon's
problems from ``health.json``, whether it still writes it, a read-only or full state dir).
``skip`` is not a failure.
"""

from __future__ import annotations

import importlib
import os
import stat
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Literal

from daemon.assemble import build_slurm_executor
from daemon.catalog import gpu_catalog
from daemon.doctor.cgroup import describe_cgroup
from daemon.doctor.queue_check import describe_queue
from daemon.doctor.running_daemon import describe_health
from daemon.doctor.service import (
    cache_dir_problem,
    ledger_access_note,
    metrics_port_status,
    partition_note,
    sbatch_missing,
    sbatch_problem,
)
from daemon.doctor.token_file import token_file_problem
from daemon.doctor.wrapper import describe_wrapper
from daemon.errors import DaemonError
from daemon.intensity.signals import chain_ages, stale_history_problem
from daemon.inventory import build_inventory
from daemon.ledger import SCHEMA_VERSION, Ledger
from daemon.settings import (
    ConfigError,
    Settings,
    config_path,
    load_settings,
    refuse_shared_local_gpus,
)
from daemon.sites import SiteConfigError, sites_of
from daemon.statedir import LEDGER_NAME, state_dir_problems
from forecasts import OFFLINE_PROBLEM, ForecastsError, SeriesCache, SignalChain
from policies import UnknownPolicyError, get_policy
from policies.errors import PoliciesError

__all__ = ["Check", "Status", "run_checks"]

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True, slots=True)
class Check:
    """One check's result: ``name``, ``status`` and a one-line ``detail``."""

    name: str
    status: Status
    detail: str


def run_checks(config: Path | None, now: datetime, **overrides: object) -> list[Check]:
    """Every check, for the settings ``config`` (and ``overrides``) would give."""
    try:
        settings = load_settings(config, **overrides)
        refuse_shared_local_gpus(settings)  # as `carbond run` refuses them
    except ConfigError as exc:
        skipped = "needs a valid config"
        names = ("state_dir", "ledger", "policy", "gpus", "nvml", "slurm", "signals", "metrics",
                 "queue")  # fmt: skip
        return [
            Check("config", "fail", "; ".join(exc.problems)),
            *(Check(name, "skip", skipped) for name in names),
            _check_wrapper(None),
            Check("cgroup", "skip", skipped),
            Check("health", "skip", skipped),
        ]
    checks = [_check_config(settings, config_path(config))]
    for name, check in (
        ("state_dir", _check_state_dir),
        ("ledger", _check_ledger),
        ("policy", _check_policy),
        ("gpus", _check_gpus),
        ("nvml", _check_nvml),
        ("slurm", _check_slurm),
        ("queue", _check_queue),
    ):
        checks.append(_guarded(name, partial(check, settings)))
    checks.insert(-1, _guarded("signals", partial(_check_signals, settings, now)))
    checks.insert(-1, Check("metrics", *metrics_port_status(settings)))
    checks.append(_guarded("wrapper", partial(_check_wrapper, settings)))
    checks.append(_guarded("cgroup", lambda: Check("cgroup", *describe_cgroup(settings))))
    checks.append(_guarded("health", partial(_check_health, settings, now)))
    return checks


def _check_config(settings: Settings, path: Path | None) -> Check:
    """The settings loaded; their sites must build too (``carbond run`` refuses a site whose
    measured CSV cannot be read or whose zone another region shares); a config file every
    user can read holds no token."""
    try:
        sites_of(settings)
    except SiteConfigError as exc:  # FILE:LINE: regions.REGION.FIELD: why
        return Check("config", "fail", f"{exc} (`carbond run` refuses it)")
    if problem := token_file_problem(path):
        return Check("config", "fail", problem)
    where = path or "defaults and environment"  # /etc/carbond/ too
    return Check("config", "pass", f"{where}: {len(settings.regions)} region(s), "
                 f"policy {settings.policy.name}")  # fmt: skip


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    try:
        return check()
    except (DaemonError, ForecastsError, PoliciesError, OSError) as exc:
        return Check(name, "fail", str(exc))


def _check_state_dir(settings: Settings) -> Check:
    path = settings.state_dir
    if not path.exists():
        return _check_missing_state_dir(path)
    if not path.is_dir():
        return Check("state_dir", "fail", f"{path} is not a directory")
    problems = state_dir_problems(path)
    if not os.access(path, os.W_OK):
        problems.append(f"{path} is not writable by uid {os.geteuid()}")
    if problems:
        return Check("state_dir", "fail", "; ".join(problems) + " (`carbond run` refuses it)")
    st = path.stat()
    owner = f"uid {st.st_uid}, mode {stat.filemode(st.st_mode)}"
    return Check("state_dir", "pass", f"{path} ({owner}; only uid {os.geteuid()} can write it)")


def _check_missing_state_dir(path: Path) -> Check:
    """A state dir that does not exist yet: ``carbond run`` creates it (mode 0755) below safe
    ancestors when its nearest existing one is writable, so that is no failure."""
    problems = state_dir_problems(path)
    if problems:
        return Check("state_dir", "fail", "; ".join(problems) + " (`carbond run` refuses it)")
    nearest = next(p for p in Path(os.path.abspath(path)).parents if p.exists())
    if not os.access(nearest, os.W_OK | os.X_OK):
        return Check("state_dir", "fail", f"{path} does not exist and uid {os.geteuid()} cannot "
                     f"create it ({nearest} is not writable; systemd's StateDirectory= or "
                     "`systemd-tmpfiles --create carbond.conf` creates it)")  # fmt: skip
    return Check("state_dir", "pass", f"{path} does not exist yet: `carbond run` creates it "
                 f"at start (mode 0755, below {nearest})")  # fmt: skip


def _check_ledger(settings: Settings) -> Check:
    path = settings.state_dir / LEDGER_NAME
    if not path.exists():
        return Check("ledger", "pass", f"{path} not created yet (`carbond run` creates it)")
    with Ledger.open_readonly(path) as ledger:
        version = ledger.schema_version()
        if version > SCHEMA_VERSION:  # its tables may no longer be what this carbond counts
            return Check("ledger", "fail", f"{path}: schema v{version} is newer than this "
                         f"carbond (v{SCHEMA_VERSION}): `carbond run` refuses it; upgrade "
                         "carbond")  # fmt: skip
        counts = ledger.counts_by_state()
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no jobs"
    if version < SCHEMA_VERSION:
        summary += f" (the daemon migrates it to v{SCHEMA_VERSION} when it starts)"
    note = ledger_access_note(settings, path)
    return Check("ledger", "pass", f"{path}: schema v{version}, {summary}{note}")


def _check_policy(settings: Settings) -> Check:
    """The policy builds; says so when it looks further ahead than the forecast reaches
    (``intensity.horizon_s``): past the forecast's end it plans on its last value, flat."""
    name = settings.policy.name
    try:
        policy = get_policy(name, **settings.policy.params)
    except UnknownPolicyError as exc:
        return Check("policy", "fail", f"{exc}; the daemon refuses to start")
    detail = f"{name} {settings.policy.params or ''}".strip()
    params = getattr(policy, "params", None)
    ahead_s = getattr(params, "slot_s", 0) * getattr(params, "horizon_slots", 0)
    horizon_s = settings.intensity.horizon_s
    if horizon_s < ahead_s:
        detail += (f"; note: it looks {ahead_s / 3600:g} h ahead, the forecast reaches "
                   f"{horizon_s / 3600:g} h (intensity.horizon_s): past that it plans on the "
                   "forecast's last value, flat")  # fmt: skip
    return Check("policy", "pass", detail)


def _check_gpus(settings: Settings) -> Check:
    if not settings.regions:
        return Check("gpus", "fail", "no [[regions]] configured: the daemon has nowhere to run")
    # "discover" regions' GPUs are Slurm's answer (its line asks): none here, nor a warning
    listed = [r for r in settings.regions if r.gpus != "discover"]
    devices = build_inventory(listed, gpu_catalog(settings))
    empty = [r.name for r in settings.regions if not any(d.device.region == r.name
                                                         for d in devices)]  # fmt: skip
    detail = ", ".join(
        f"{r.name} ({r.zone}, {r.executor}): "
        + ("discover" if r.gpus == "discover" else f"{len(r.gpus)} declared")
        for r in settings.regions
    )
    if empty:
        declared = [r for r in settings.regions if r.name in empty and r.gpus != "discover"]
        if declared or _gpu_module() is None:
            return Check("gpus", "fail", f"{detail}; no GPU in: {', '.join(empty)}")
    return Check("gpus", "pass", detail)


def _gpu_module() -> object | None:
    try:
        return importlib.import_module("daemon.gpu.factory")
    except ModuleNotFoundError:
        return None


def _check_nvml(settings: Settings) -> Check:
    """The configured GPUs against NVML (:mod:`daemon.gpu.configured`), never the backend's
    defaults."""
    if _gpu_module() is None:
        return Check("nvml", "skip", "not available: this build has no GPU backend (daemon.gpu)")
    from daemon.gpu.configured import describe_configured_gpus

    status, detail = describe_configured_gpus(settings, gpu_catalog(settings))
    return Check("nvml", status, detail)


def _check_slurm(settings: Settings) -> Check:
    """Each ``executor = "slurm"`` region's partition through ``scontrol show node``, as
    ``carbond run`` discovers it (same ``bin_dir``, timeout and ``SLURM_CONF``): fails when
    Slurm does not answer, a GRES type matches no catalog GPU, or the partition has no node
    with the region's GRES (the daemon would start that region without GPUs); or when sbatch
    refuses the region's jobs (:func:`~daemon.doctor.service.sbatch_problem`), or cannot run
    at all (:func:`~daemon.doctor.service.sbatch_missing`)."""
    executor = build_slurm_executor(settings)
    if executor is None:
        return Check("slurm", "skip", 'no region runs on Slurm (executor = "slurm")')
    missing = sbatch_missing(settings)
    found, problems = [], []
    for region in settings.regions:
        if region.executor != "slurm" or region.slurm is None:
            continue
        cluster = f" on cluster {region.slurm.cluster}" if region.slurm.cluster else ""
        where = f"{region.name} (partition {region.slurm.partition}{cluster})"
        try:
            gpus = executor.discover(region.name)
        except DaemonError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if not gpus:
            problems.append(f"{where}: no node of the partition has GRES {region.slurm.gres}")
            continue
        refused, note = (missing, "") if missing else sbatch_problem(executor, region.name)
        if refused:
            problems.append(f"{where}: {refused}")
            continue
        counts = Counter(name for _, name in gpus)
        found.append(f"{where}: " + ", ".join(f"{n}x {name}" for name, n in counts.items())
                     + note + partition_note(executor, region.name))  # fmt: skip
    if problems:
        return Check("slurm", "fail", "; ".join(problems + found))
    return Check("slurm", "pass", "; ".join(found))


def _check_signals(settings: Settings, now: datetime) -> Check:
    """Each zone's intensity now from the fallback chain, offline (cache, history, static):
    no network and no directory is created. Says whether a token is set, never its value."""
    zones = sorted({r.zone for r in settings.regions})
    cache_dir = settings.signals.cache_dir or settings.state_dir / "cache" / "intensity"
    cache = (
        SeriesCache(cache_dir, max_points=settings.signals.cache_max_points)
        if cache_dir.is_dir()
        else None
    )
    # the daemon's ages (until 2026-12-08 the chain's defaults)
    kind = settings.electricitymaps.emission_factor_type
    chain = SignalChain(cache=cache, kind=kind, **chain_ages(settings))
    values = []
    for zone in zones:
        reading = chain.current(zone, now)
        # why it fell back past the cache (a history too old to use, a cache file unreadable);
        # until 2026-12-07 not said. This chain has no provider by design: that is no news.
        why = [p for p in (reading.problem or "").split("; ") if p and p != OFFLINE_PROBLEM]
        if (stale := chain.stale_history(zone, now)) is not None:
            # in the daemon's words (its health problem), in place of the forecaster's
            # "history forecast: history ends N days before now", which says the same
            why = [p for p in why if p != stale.forecast_problem]
            why.insert(0, stale_history_problem(stale))
        values.append(
            f"{zone} {reading.intensity_g_per_kwh:.0f} g/kWh ({reading.rung}, "
            f"{reading.age_s / 3600:.1f} h old{': ' if why else ''}{'; '.join(why)})"
        )
    if settings.electricitymaps.token:
        token = "set"
    elif not os.environ.get("CREDENTIALS_DIRECTORY"):
        # Outside the unit: a token its LoadCredential= hands to `carbond run` is not seen here.
        token = (
            "NOT set here (no $CREDENTIALS_DIRECTORY: a LoadCredential= token reaches only "
            "the daemon)"
        )
    else:
        token = "NOT set (live API unused)"
    shown = "; ".join(values) or "no zones configured"
    where = f"cache {cache_dir}" if cache is not None else f"no cache yet at {cache_dir}"
    if problem := cache_dir_problem(settings):  # the daemon would run without a cache
        where = f"{problem}: the daemon runs without a cache (no history across restarts)"
    return Check(
        "signals",
        "fail" if problem else "pass",
        f"planner source {settings.intensity.source}; chain offline: {shown}; {where}; "
        f"Electricity Maps token {token}",
    )


def _check_queue(settings: Settings) -> Check:
    return Check("queue", *describe_queue(settings))


def _check_wrapper(settings: Settings | None) -> Check:
    return Check("wrapper", *describe_wrapper(settings))


def _check_health(settings: Settings, now: datetime) -> Check:
    status, detail = describe_health(settings, now)
    return Check("health", status, detail)
