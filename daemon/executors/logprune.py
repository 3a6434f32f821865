"""Removing the log files of jobs that ended long ago (``carbond prune-logs``).

carbond keeps every job's files in ``state_dir/logs`` (:mod:`daemon.executors.jobfiles`:
``<id>.out``, ``.err``, ``.spec.json``, ``.status.json``, ``.started.<n>``, and a ``.<name>.tmp``
a crash left) and never removes them. A job's files may go once the job is final in the ledger
and its run is no longer being stopped, and none of them was written since the cutoff. A final
job is never launched nor adopted again and its id is never reused, but a lost GPU's job is
recorded ``failed`` at once while its run is still being stopped
(:mod:`daemon.endings.stopping`: the ledger's ``runs.stopping``, resumed by a restarted
daemon): its wrapper runs on, writing its ``.out``/``.err`` and at its end ``.status.json``,
and the executor polls the run (reading that ``.status.json``) until it is gone. Only then
does nothing read or write them again. Which jobs qualify is the caller's ``ended_at``
(``carbond prune-logs`` reads the job states and the runs being stopped from one snapshot of
the ledger). Files of jobs that are not final, whose run is still being stopped, or that the
ledger does not know (a ledger restored from an older backup), are left alone.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

__all__ = ["PrunedLogs", "job_of_log_file", "prune_logs"]

_SUFFIX = re.compile(r"^(?P<job>.+?)\.(?:out|err|spec\.json|status\.json|started\.\d+)$")


@dataclass(frozen=True, slots=True)
class PrunedLogs:
    """What :func:`prune_logs` removed (or would remove, dry run) and what it left."""

    jobs: tuple[str, ...]  # the jobs whose files went, sorted
    files: int
    size_bytes: int
    kept_jobs: int  # jobs with files left: not final, or ended or written after the cutoff
    unknown_files: tuple[str, ...]  # files naming no job the ledger knows (left), sorted


def job_of_log_file(name: str) -> str | None:
    """The job id a file in the log dir belongs to (None: not a job's file)."""
    if name.startswith(".") and name.endswith(".tmp"):  # a crash's leftover temporary file
        name = name[1:-4]
    match = _SUFFIX.match(name)
    return None if match is None else match["job"]


def prune_logs(
    log_dir: Path,
    ended_at: Callable[[str], datetime | None],
    cutoff: datetime,
    *,
    dry_run: bool = False,
) -> PrunedLogs:
    """Remove the files in ``log_dir`` of every job that ended before ``cutoff`` and whose
    files are all older than it. ``ended_at(job_id)`` is when the job reached its final state,
    None while it is not final or its run is still being stopped; it raises ``LookupError``
    for a job the ledger does not know. A missing ``log_dir`` (no job ran yet) has nothing
    to remove.

    Raises:
        OSError: ``log_dir`` cannot be listed, or a file cannot be removed.
    """
    by_job: dict[str, list[tuple[Path, os.stat_result]]] = {}
    try:
        entries = list(os.scandir(log_dir))
    except FileNotFoundError:
        entries = []
    for entry in entries:
        job_id = job_of_log_file(entry.name)
        st = entry.stat(follow_symlinks=False)
        if job_id is not None and (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            by_job.setdefault(job_id, []).append((Path(entry.path), st))
    cut = cutoff.timestamp()
    removed: list[str] = []
    unknown: list[str] = []
    files = size = kept = 0
    for job_id, found in sorted(by_job.items()):
        try:
            ended = ended_at(job_id)
        except LookupError:
            unknown += [path.name for path, _ in found]
            continue
        if ended is None or ended >= cutoff:
            kept += 1
            continue
        if any(st.st_mtime >= cut for _, st in found):  # written since: still in use
            kept += 1
            continue
        for path, st in found:
            if not dry_run:
                path.unlink(missing_ok=True)  # a link itself, never what it points to
            files, size = files + 1, size + st.st_size
        removed.append(job_id)
    return PrunedLogs(tuple(removed), files, size, kept, tuple(sorted(unknown)))
