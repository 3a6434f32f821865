"""What ``carbond submit`` fills in and checks before it appends a line.

It fills in the job's working directory (:func:`workdir`) and resolves a bare program name on the
caller's ``PATH`` (:func:`resolve_program`). It warns at once, instead of letting the daemon fail
the job later (:func:`submit_warnings`), about a deadline already past, a config with no region
at all (no daemon of it can run the job), a job that fits none of the configured GPUs (with the
numbers) or only GPUs the running daemon does not plan on (:mod:`daemon.cli.submit_health`),
or a deadline the fastest configured GPU cannot meet, and about an ``--id`` an
unread line of the caller's queue file already has (:func:`unread_duplicate`).
Warnings only: the line is still appended (the configuration may change before the daemon
plans it)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from daemon.catalog import gpu_catalog
from daemon.cli.unread import line_rules, unread_job_taken
from daemon.errors import UsageError
from daemon.executors import jobfiles
from daemon.executors.workdir import workdir_problem
from daemon.inventory import build_inventory
from daemon.ledger import LedgerError
from daemon.planning import request_spec
from daemon.queue import QUEUE_NAME, QueueError, submit_target
from daemon.queue.job_request import JobRequest
from daemon.reports.lines import user_name
from daemon.settings import Settings
from daemon.supervision.health import HEALTH_NAME
from policies import Device, JobSpec
from policies.candidates import device_groups, estimate_on, unfit_reason
from policies.footprint import Estimate

__all__ = ["resolve_program", "submit_warnings", "unread_duplicate", "workdir"]


def submit_warnings(
    settings: Settings,
    request: JobRequest,
    now: datetime,
    config: Path | None = None,
    unplanned: Mapping[str, str] | None = None,
) -> list[str]:
    """The problems the daemon would meet with ``request``, one sentence each; ``config``
    is the file ``settings`` came from (named when it has no region); ``unplanned``: device
    id -> problem of the declared GPUs the running daemon does not plan on
    (:func:`daemon.cli.submit_health.unplanned_gpus`), unavailable to the job as to it.

    The GPU checks use the regions' declared GPUs. A region that discovers its GPUs (only the
    daemon's node knows them) may have any catalog type, as many as the job needs: the job is
    checked against those too, so what fits no GPU of the catalog, or misses its deadline even
    on the fastest, is still warned about. Without a configured region no daemon of this
    config runs (``carbond run`` refuses to start): that is the warning, no GPU check.
    """
    warnings = []
    deadline = request.deadline
    if deadline is not None and deadline <= now:
        warnings.append(
            f"deadline {deadline.isoformat()} is already past: the job will expire without running"
        )
    if not settings.regions:
        where = str(config) if config is not None else "no config file, no CARBOND_REGIONS"
        warnings.append(
            f"no [[regions]] configured ({where}): no daemon can run the job until a region is "
            "added (`carbond run` refuses to start without one); it is queued all the same"
        )
        return warnings
    spec = request_spec(request, request.job_id or "new", now, deadline)
    need = spec.workload.tensor_parallel
    devices, what = _devices(settings, spec.regions, need)
    fitting = _fitting(spec, devices)
    if not fitting:
        reason = unfit_reason(spec, devices).replace("admissible device", what, 1)
        warnings.append(f"{reason}: the daemon will reject it")
        return warnings
    if unplanned:  # the running daemon's view: what it does not plan on is unavailable
        named = sorted({unplanned[d.device_id] for _, group in fitting for d in group
                        if d.device_id in unplanned})  # fmt: skip
        devices = [replace(d, available=d.device_id not in unplanned) for d in devices]
        fitting = _fitting(spec, devices)
        if not fitting:
            warnings.append(
                f"fits only GPU(s) the running daemon does not plan on ({HEALTH_NAME}: "
                f"{'; '.join(named)}): {unfit_reason(spec, devices)}: the daemon will reject it"
            )
            return warnings
    if deadline is not None and deadline > now:
        fastest = min((est for est, _ in fitting), key=lambda e: e.duration_s)
        if now + timedelta(seconds=fastest.duration_s) > deadline:
            away = _duration((deadline - now).total_seconds())
            warnings.append(
                f"the job needs about {_duration(fastest.duration_s)} on the fastest {what} "
                f"({fastest.gpu}) but its deadline is {away} away: it will likely expire or "
                "miss it"
            )
    return warnings


def unread_duplicate(settings: Settings, job_id: str, uid: int, now: datetime) -> list[str]:
    """A warning when a job line with ``job_id`` that the daemon has not read yet and will
    accept (read at ``now``) comes before the new line: in the caller's queue file (it reads
    that one and ignores the new line: the same id again is, by design, a resubmission), or,
    for another user, in the main ``queue.jsonl`` where they may read it (the daemon reads
    it first, and rejects the new line); a line it will reject takes no id. None when a file
    cannot be read: the append says why."""
    state_dir = settings.state_dir
    try:
        found = unread_job_taken(state_dir, job_id, uid, now=now, rules=line_rules(settings))
        target = submit_target(state_dir, uid)
    except (QueueError, LedgerError):
        return []
    if found is None or found.queue_file not in (target, state_dir / QUEUE_NAME):
        return []  # root: another user's file, read after root's queue.jsonl
    if found.uid != uid:
        return [
            f"an unread line of {found.queue_file} ({user_name(found.uid)}'s, read before your "
            f"queue file) already has id {job_id!r}: the daemon will take that job and reject "
            f"this line (another user's id); choose another --id"
        ]
    cancel = "; a cancel for it follows there too" if found.cancel else ""
    # that line has no newline yet: this submit's line starts with one, which ends it
    ends = "" if found.ended else " (its line had no newline: this submit ends it)"
    return [
        f"an unread line of {found.queue_file} already has id {job_id!r}{ends}: the daemon "
        f"will read that job and ignore this one (a resubmission){cancel}; see `carbond "
        f"status {job_id}`, or choose another --id"
    ]


def _fitting(spec: JobSpec, devices: Sequence[Device]) -> list[tuple[Estimate, tuple[Device, ...]]]:
    """Each pool of ``devices`` ``spec`` may use, has enough GPUs for it and fits, with the
    job's estimate there."""
    need = spec.workload.tensor_parallel
    return [
        (est, group)
        for group in device_groups(spec, devices)
        if len(group) >= need and (est := estimate_on(spec, group[0])).fits
    ]


def _devices(settings: Settings, regions: Sequence[str], need: int) -> tuple[list[Device], str]:
    """The declared GPUs, and for each region the job may use that discovers its GPUs,
    ``need`` of every catalog type (what it may find); with what to call them."""
    catalog = gpu_catalog(settings)
    declared = [r for r in settings.regions if r.gpus != "discover"]
    devices = [gpu.device for gpu in build_inventory(declared, catalog)]
    discovering = [r for r in settings.regions
                   if r.gpus == "discover" and (not regions or r.name in regions)]  # fmt: skip
    devices += [
        Device(f"{region.name}/{gpu.name}-{n}", region.name, region.zone, gpu, region.pue)
        for region in discovering
        for gpu in catalog
        for n in range(need)
    ]
    return devices, "GPU a region declares or may discover" if discovering else "configured GPU"


def resolve_program(record: dict[str, Any]) -> list[str]:
    """Replace a bare program name (``python``) in ``record["command"]`` by its path on the
    caller's ``PATH``, as their shell would run it: the job's own ``PATH`` is a fixed system
    one, so ``python`` from an activated venv would otherwise be another interpreter, or none.
    Returns the warnings (a name not found is kept)."""
    argv = record.get("command")
    if not isinstance(argv, list) or not argv or not isinstance(argv[0], str):
        return []  # validation names the problem
    program = argv[0]
    if not program or "/" in program:
        return []
    found = shutil.which(program)
    if found is None:
        return [f"{program!r} is not on your PATH; the job looks for it on "
                f"{jobfiles.DEFAULT_PATH}"]  # fmt: skip
    record["command"] = [os.path.abspath(found), *argv[1:]]
    return []


def workdir(flag: str | None, from_file: Any) -> Any:
    """The job's working directory: ``--cwd``, else the file's ``cwd``, else where submit
    runs; absolute, and one the caller can enter as the job will (primary group only).

    Raises:
        UsageError: the caller cannot start a job there.
    """
    if flag is None and from_file is not None:
        return from_file  # validated with the rest of the line
    path = os.path.abspath(flag) if flag is not None else os.getcwd()
    if (problem := workdir_problem(path, os.getuid(), os.getgid())) is not None:
        where = "--cwd" if flag is not None else "the current directory (the default --cwd)"
        raise UsageError(f"{where}: {problem}")
    return path


def _duration(seconds: float) -> str:
    """``seconds`` as a person says it: ``45 s``, ``10 min``, ``1.5 h``."""
    if round(seconds) < 60:
        return f"{seconds:.0f} s"
    if round(seconds / 60) < 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
