"""A Slurm job's output files, ``<log_dir>/<job id>.out|.err``: made by carbond, owned by the
job's user (0600), before its submission and again before it may start (release, and while
it is held) where they were removed: slurmstepd opens them as the job's user, who may not
create files in carbond's log dir, and fails the job when it cannot."""

from __future__ import annotations

import os
import re
from pathlib import Path

from daemon.executors import jobfiles
from daemon.executors.base import LaunchSpec
from daemon.executors.errors import ExecutorError
from daemon.executors.slurm.commands import CANNOT_START, NOT_FOUND

__all__ = ["cannot_run", "missing", "not_found", "prepare"]

_SUFFIXES = (".out", ".err")
_TAIL = 4096  # bytes of a job's .err read for its last line
# what /bin/sh prints when the batch script's exec fails (dash: "SCRIPT: 7: exec: FILE: not
# found"; bash: "SCRIPT: line 7: FILE: cannot execute: ..."); Slurm runs it as slurm_script
_EXEC_FAILED = re.compile(r"^(?:.*/)?slurm_script: (?:line )?\d+: (?:exec: )?(?P<rest>.+)$")


def _paths(spec: LaunchSpec) -> list[Path]:
    return [spec.log_dir / (spec.job_id + suffix) for suffix in _SUFFIXES]


def missing(spec: LaunchSpec) -> bool:
    """Whether one of ``spec``'s output files is not there."""
    return not all(path.exists() for path in _paths(spec))


def prepare(spec: LaunchSpec) -> None:
    """The log directory, and the job's output files owned by its user (appended to where
    they exist).

    Raises:
        ExecutorError: they cannot be made (names the directory and why).
    """
    try:
        spec.log_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        for path in _paths(spec):
            os.close(jobfiles.open_log(path, spec.uid, spec.gid))
    except OSError as exc:
        raise ExecutorError(f"job {spec.job_id}: cannot prepare {spec.log_dir}: {exc}") from exc


def not_found(log_dir: Path, job_id: str) -> str | None:
    """``command not found: NAME`` when the last line of job ``job_id``'s ``.err`` in
    ``log_dir`` is the one its batch script prints before it exits 127 because the job's
    ``PATH`` has no such command (:data:`~daemon.executors.slurm.commands.NOT_FOUND`); None
    otherwise (its own command exited 127, or the file cannot be read): Slurm records only the
    exit code, so nothing else is claimed. The file is the job's user's: only its last
    ``_TAIL`` bytes are read, a link is not followed, and the name is kept printable."""
    return _said(log_dir, job_id, NOT_FOUND, "command not found: ")


def cannot_run(log_dir: Path, job_id: str, exit_code: int | None) -> str | None:
    """Why job ``job_id`` could not run its command, as its batch script said on the last
    line of its ``.err`` before it exited: ``command not found: NAME`` for exit code 127
    (:func:`not_found`), ``cannot start: FILE: WHY`` for 126, the command found but not
    executable (:data:`~daemon.executors.slurm.commands.CANNOT_START`: a directory, no
    execute permission, or a file on a ``noexec`` mount, which the script's check names), as
    the local executor says; ``cannot start: FILE: WHY`` too where the script's own ``exec``
    of it failed after that check passed (:func:`exec_failed`: its ``#!`` interpreter
    missing, a binary of another format); None for another code, or where the script did
    not say so (the job's own command exited 126 or 127)."""
    if exit_code == 127:
        return not_found(log_dir, job_id) or exec_failed(log_dir, job_id)
    if exit_code == 126:
        return _said(log_dir, job_id, CANNOT_START, "cannot start: ") or exec_failed(
            log_dir, job_id
        )
    return None


def exec_failed(log_dir: Path, job_id: str) -> str | None:
    """``cannot start: FILE: WHY`` when job ``job_id``'s ``.err`` ends with what ``/bin/sh``
    printed as its batch script's ``exec`` failed (lines naming Slurm's ``slurm_script``: the
    first of them at its end): the file was found and executable (the script checked), yet the
    kernel would not run it. dash says ``not found`` for a ``#!`` interpreter (or ELF loader)
    that is missing, which the reason then names. None otherwise: the job's own command ran."""
    lines = _tail(log_dir, job_id).removesuffix("\n").split("\n")
    said = None
    for line in reversed(lines):
        if (m := _EXEC_FAILED.match(line)) is None:
            break
        said = m.group("rest")
    if said is None:
        return None
    rest = "".join(c if c.isprintable() else "?" for c in said)[:200]
    if rest.endswith(": not found"):  # dash: the file is there (checked): what it needs is not
        rest += " (its #! interpreter or loader is missing)"
    return f"cannot start: {rest}"


def _said(log_dir: Path, job_id: str, prefix: str, words: str) -> str | None:
    """``words`` and the rest of the last line of job ``job_id``'s ``.err`` when that line
    starts with ``prefix`` and goes on; None otherwise (see :func:`not_found`)."""
    last = _tail(log_dir, job_id).removesuffix("\n").rpartition("\n")[2]
    if not last.startswith(prefix) or len(last) == len(prefix):
        return None
    rest = "".join(c if c.isprintable() else "?" for c in last[len(prefix) :])
    return f"{words}{rest[:200]}"


def _tail(log_dir: Path, job_id: str) -> str:
    """The last ``_TAIL`` bytes of job ``job_id``'s ``.err`` (the job's user's file: a link is
    not followed); empty where it cannot be read."""
    try:
        fd = os.open(log_dir / (job_id + ".err"), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, _TAIL, max(0, size - _TAIL)).decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        os.close(fd)
