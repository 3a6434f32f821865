"""``carbond doctor``'s look at what ``carbond run`` sets up beside the state dir: the metrics
endpoint's port (``metrics``), the intensity cache directory (part of ``signals``) and whether
a Slurm region's partition is up and whether sbatch takes its jobs (part of ``slurm``).

Nothing is created and nothing stays bound: the port is bound and released at once, the cache
directory's writability is judged from it or from its nearest existing parent.
"""

from __future__ import annotations

import os
import shutil
import socket
import urllib.request
from pathlib import Path
from typing import Literal

from daemon.assemble import slurm_path
from daemon.doctor.port_holder import describe_holder, port_holder
from daemon.doctor.running_daemon import running_pid
from daemon.errors import DaemonError
from daemon.executors.slurm import SlurmExecutor
from daemon.executors.slurm.runner import SlurmUnavailableError
from daemon.executors.slurm.trial import NOT_STARTED
from daemon.ledger.privacy import open_to_others
from daemon.settings import Settings
from daemon.supervision.health import HEALTH_NAME, read_health

__all__ = [
    "cache_dir_problem",
    "ledger_access_note",
    "metrics_port_status",
    "partition_note",
    "sbatch_missing",
    "sbatch_problem",
]

_HOST = "127.0.0.1"  # the endpoint's only address (daemon.metrics.prometheus)
_PROBE_TIMEOUT_S = 2.0


def metrics_port_status(settings: Settings) -> tuple[Literal["pass", "fail", "skip"], str]:
    """``("pass" | "fail" | "skip", detail)`` for ``metrics.port``: free, served by a running
    carbond (its ``/metrics`` has carbond's series), or held by something else, named where
    ``/proc`` says (:mod:`daemon.doctor.port_holder`: the pid and its name; another user's
    process to root alone, else its uid; until 2026-12-07 only "another program"): ``carbond run``
    then logs ``metrics_unavailable`` and runs without ``/metrics`` (until 2026-12-07 this
    detail still said it would stop at start, as it once did). A carbond serving it that is
    not this state dir's daemon fails (:func:`_other_carbond`), and so does a free port while
    this state dir's daemon runs: it serves the port it started with (a reload keeps it), or
    none (until 2026-12-07 "is free" passed, and Prometheus on the new port scraped nothing)."""
    port = settings.metrics.port
    if not port:
        return "skip", "metrics.port = 0: no endpoint"
    address = f"{_HOST}:{port}"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # as the endpoint's server binds: a port left in TIME_WAIT by a stopped daemon is free
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((_HOST, port))
    except OSError as exc:
        if _serves_carbond(port):
            if other := _other_carbond(port, settings.state_dir):
                return "fail", (
                    f"{address}: served by another carbond ({other}), not the daemon of "
                    f"{settings.state_dir}: `carbond run` here runs without /metrics (it logs "
                    "metrics_unavailable) and Prometheus scrapes that one's series; give each "
                    "daemon its own metrics.port"
                )
            return "pass", f"{address}: served by a running carbond"
        return "fail", (
            f"{address}: cannot listen ({exc.strerror}); {describe_holder(port_holder(port))}: "
            "`carbond run` would run without /metrics (it logs metrics_unavailable; set "
            "metrics.port to a free port, or 0 for no endpoint)"
        )
    if (pid := running_pid(settings)) is not None:
        return "fail", (
            f"{address} is free: the running daemon (pid {pid}) does not serve it (a reload "
            "keeps the metrics.port it started with, and one it could not bind at start stays "
            "unserved): restart it (`systemctl restart carbond`)"
        )
    return "pass", f"{address} is free"


def _other_carbond(port: int, state_dir: Path) -> str:
    """The carbond holding ``port`` when ``/proc`` names it and it is not the daemon this
    state dir's ``health.json`` names (``pid 812 (carbond, root (uid 0))``); empty when it is,
    or when the holder cannot be seen (another user's process, to anyone but root: the
    health line then says whether this state dir's daemon runs without /metrics). Until
    2026-12-07 any carbond serving the port passed."""
    holder = port_holder(port)
    if holder is None or holder.pid is None:
        return ""
    report = read_health(state_dir / HEALTH_NAME)
    if report is not None and report.pid == holder.pid:
        return ""
    return describe_holder(holder).removesuffix(" holds it")


def _serves_carbond(port: int) -> bool:
    """Whether ``/metrics`` on ``port`` answers with carbond's series."""
    try:
        with urllib.request.urlopen(
            f"http://{_HOST}:{port}/metrics", timeout=_PROBE_TIMEOUT_S
        ) as answer:
            return b"carbond_" in answer.read(1 << 20)
    except (OSError, ValueError):
        return False


def cache_dir_problem(settings: Settings) -> str | None:
    """Why ``signals.cache_dir``, when set, cannot be written by this user (the daemon then
    runs without a cache: no history survives a restart); None when it can or is not set
    (unset, the cache is ``<state_dir>/cache/intensity``, else ``~/.cache/carbond/intensity``
    where that is not writable: :func:`daemon.intensity.signals.resolve_cache_dir`)."""
    path = settings.signals.cache_dir
    if path is None:
        return None
    uid = os.geteuid()
    if path.exists():
        if not path.is_dir():
            return f"signals.cache_dir {path} is not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"signals.cache_dir {path} is not writable by uid {uid}"
        return None
    nearest = next(p for p in Path(os.path.abspath(path)).parents if p.exists())
    if not nearest.is_dir() or not os.access(nearest, os.W_OK | os.X_OK):
        return f"signals.cache_dir {path} does not exist and uid {uid} cannot create it"
    return None


def sbatch_missing(settings: Settings) -> str:
    """Why the ``sbatch`` the daemon would launch every Slurm job with cannot run, or empty:
    ``executors.slurm.bin_dir``'s ``sbatch`` is missing, no file, or not executable by this
    user (without ``bin_dir``: none on the commands' ``PATH``). ``scontrol`` may answer all the
    same; until 2026-12-07 the slurm line then passed, and every launch failed."""
    bin_dir = settings.executors.slurm.bin_dir
    if bin_dir is None:
        path = slurm_path(settings)
        if shutil.which("sbatch", path=path) is None:
            return f"no executable sbatch on PATH {path}: every launch would fail"
        return ""
    sbatch = bin_dir / "sbatch"
    if not sbatch.exists():
        why = "is missing"
    elif not sbatch.is_file():
        why = "is not a file"
    elif not os.access(sbatch, os.X_OK):
        why = f"is not executable by uid {os.geteuid()}"
    else:
        return ""
    return f"sbatch {sbatch} {why} (executors.slurm.bin_dir): every launch would fail"


def sbatch_problem(executor: SlurmExecutor, region: str) -> tuple[str, str]:
    """Why sbatch would refuse the jobs of ``region`` (empty: it would not), and a note
    (empty: none): ``sbatch --test-only`` (carbond's own sbatch argv for a one-GPU job of the
    region, of each GPU type it would ask, its ``sbatch_options`` last, as this user:
    :meth:`~daemon.executors.slurm.SlurmExecutor.sbatch_refusals`) refuses it, in sbatch's
    words, naming the type unless every type is refused alike: an option this sbatch does
    not know, an invalid ``--mem=``, a reservation, account, QOS or ``--constraint`` feature
    the cluster (or the nodes of that type) does not have. Empty too when sbatch does not
    answer (the slurm line says what ``scontrol`` said). A reservation not started yet,
    which ``--test-only`` cannot judge, is the note."""
    try:
        found = executor.sbatch_refusals(region)
        tried = executor.gres_types(region)
    except SlurmUnavailableError:
        return "", ""
    refusals = [r for r in found if not r.waits_for]
    waiting = sorted({name for r in found for name in r.waits_for})
    note = (
        f" (note: `sbatch --test-only` cannot judge reservation {', '.join(waiting)}, not "
        f'started yet ("{NOT_STARTED}"); its jobs wait for it)'
        if waiting
        else ""
    )
    if len(refusals) == len(tried) and len({r.said for r in refusals}) == 1:  # all, alike
        return (
            "sbatch refuses its jobs (`sbatch --test-only` with carbond's options and the "
            f"region's sbatch_options; every launch would fail): {refusals[0].said}"
        ), note
    return "; ".join(
        f"sbatch refuses its jobs on its {r.gres_type or 'untyped'} GPUs (`sbatch --test-only` "
        f"with carbond's options for them, --gres={r.gres}, and the region's sbatch_options; "
        f"every launch on them would fail): {r.said}"
        for r in refusals
    ), note


def partition_note(executor: SlurmExecutor, region: str) -> str:
    """A note when ``region``'s partition is not up in Slurm (``carbond run`` then plans no
    job onto it: its GPUs are unavailable until it is); empty when it is up, or when Slurm's
    answer about it cannot be had (its nodes answered the check: not worth failing for)."""
    try:
        state = executor.partition_state(region)
    except DaemonError:
        return ""
    if state == "UP":
        return ""
    return f" (note: partition {state} in Slurm: no job is planned there until it is up)"


def ledger_access_note(settings: Settings, path: Path) -> str:
    """A note (never a failure) when the ledger's files are open to other users: any of them
    can stall the daemon's writes and read every job's argv (``[ledger] private``); empty
    when they are not."""
    found = open_to_others(path)
    if not found:
        return ""
    modes = ", ".join(f"{file.name} {mode:04o}" for file, mode in found)
    if settings.ledger.private:
        return f"; note: {modes}: `carbond run` makes them private (0600) when it next starts"
    return (
        f"; note: readable by other users ({modes}): any of them can read every job's argv and "
        "cwd, and stall the daemon's ledger writes by locking ledger.db-shm; `[ledger] private "
        '= true` closes this (docs/operations.md, "Who can read the ledger")'
    )
