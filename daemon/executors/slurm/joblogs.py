"""A Slurm job's output files, ``<log_dir>/<job id>.out|.err``: made by carbond, owned by the
job's user (0600), before its submission and again before it may start (release, and while
it is held) where they were removed: slurmstepd opens them as the job's user, who may not
create files in carbond's log dir, and fails the job when it cannot."""

from __future__ import annotations

import os
from pathlib import Path

from daemon.executors import jobfiles
from daemon.executors.base import LaunchSpec
from daemon.executors.errors import ExecutorError

__all__ = ["missing", "prepare"]

_SUFFIXES = (".out", ".err")


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
