"""``carbond doctor``'s ``cgroup`` check: whether local jobs get cgroups of their own.

The running daemon's view decides (:func:`daemon.executors.local_cgroup.probe` on its
``/proc/PID/cgroup`` and ``/proc/PID/mountinfo``: doctor runs in another cgroup, and under
``ProtectControlGroups=`` in another mount view). Without a running daemon, only an explicit
``executors.local.cgroup`` path can be checked (as doctor sees it). The per-job caps
(``executors.local.memory_max_bytes``, ``memory_high_bytes``, ``memory_swap_max_bytes``,
``pids_max``) are named with the subtree; a cap whose controller the subtree does not enable
for the jobs' cgroups (or, without a running daemon, cannot:
:func:`daemon.executors.local_cgroup_caps.unavailable`; a swap cap, also where the kernel
does not account swap), or that has no subtree to go in, fails the check: the jobs would run
without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from daemon.doctor.running_daemon import effective_uid, still_the_daemon
from daemon.executors.local_cgroup import AUTO, OFF, probe, shared_with_jobs
from daemon.executors.local_cgroup_caps import JobCaps, unavailable
from daemon.settings import Settings
from daemon.supervision.health import HEALTH_NAME, read_health

__all__ = ["describe_cgroup"]

Status = Literal["pass", "fail", "skip"]

_WITHOUT = "local jobs are followed by their session only: a process that leaves it (setsid) "
_WITHOUT += "outlives the job's stop"


def describe_cgroup(settings: Settings) -> tuple[Status, str]:
    """``(status, detail)``: PASS with the subtree the jobs' cgroups go in; SKIP when off,
    or on "auto" without one (the daemon runs jobs as before) or without a running daemon
    to ask; FAIL when an explicit ``executors.local.cgroup`` path is unusable, or when a
    per-job cap is set that jobs would run without. Never raises."""
    local = settings.executors.local
    setting = local.cgroup
    caps = JobCaps.of_settings(
        memory_max_bytes=local.memory_max_bytes,
        memory_high_bytes=local.memory_high_bytes,
        memory_swap_max_bytes=local.memory_swap_max_bytes,
        pids_max=local.pids_max,
    )
    uncapped = "; ".join(_not_applied(caps.settings_of(c)) for c in caps.controllers())
    if setting == OFF:
        if uncapped:
            return "fail", f'off (executors.local.cgroup = "off"): {uncapped}; {_WITHOUT}'
        return "skip", f'off (executors.local.cgroup = "off"): {_WITHOUT}'
    pid = _running_daemon(settings.state_dir)
    if pid is None and setting == AUTO:
        return "skip", ("no running daemon to ask: it looks for a delegated cgroup at start "
                        "(logs local_cgroups_enabled or local_cgroups_unavailable)")  # fmt: skip
    uid = None if pid is None else effective_uid(pid)
    if pid is None:
        found, whose = probe(setting), "as doctor sees it; the daemon checks at start"
    else:
        proc = Path(f"/proc/{pid}")
        found = probe(
            setting,
            proc_cgroup=proc / "cgroup",
            mountinfo=proc / "mountinfo",
            uid=uid,  # the daemon's: a User= one has its subtree chowned to it
        )
        whose = f"daemon pid {pid}"
    if found.path is not None:
        detail = f"each local job in a cgroup of its own under {found.reason} ({whose})"
        problems = unavailable(found.path, caps, enabled=pid is not None)
        applied = caps.without(problems)
        if applied.files():
            detail += f", capped at {applied.describe()}"
        buts = [f"{why}: jobs run without it" for why in problems.values()]
        note = shared_with_jobs(uid)  # a daemon not root: its jobs own their cgroups
        buts += [note] if note else []
        but = "; ".join(buts)
        return ("fail" if problems else "pass"), f"{detail}; but {but}" if but else detail
    if uncapped:
        return "fail", f"{found.reason} ({whose}): {uncapped}; {_WITHOUT}"
    status: Status = "skip" if setting == AUTO else "fail"
    return status, f"{found.reason} ({whose}): {_WITHOUT}"


def _not_applied(settings: str) -> str:
    """``"A is not applied"``, ``"A and B are not applied"`` (:meth:`JobCaps.settings_of`)."""
    return f"{settings} {'are' if ' and ' in settings else 'is'} not applied"


def _running_daemon(state_dir: Path) -> int | None:
    """The pid in ``health.json`` if it still runs the daemon (:func:`still_the_daemon`)."""
    report = read_health(state_dir / HEALTH_NAME)
    if report is None:
        return None
    return report.pid if still_the_daemon(report.pid, state_dir) else None
