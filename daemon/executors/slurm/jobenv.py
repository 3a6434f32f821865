"""A Slurm job's working directory and environment: what its batch script sets (``sbatch``
starts it from scratch, never with the daemon's environment)."""

from __future__ import annotations

import pwd
from pathlib import Path

from daemon.executors import jobfiles
from daemon.executors.base import LaunchSpec

__all__ = ["home", "job_env"]


def home(uid: int) -> Path:
    """The job's working directory: its user's home, or ``/`` when it has none."""
    try:
        home = Path(pwd.getpwuid(uid).pw_dir)
    except KeyError:
        return Path("/")
    return home if home.is_dir() else Path("/")


def job_env(spec: LaunchSpec, home: Path) -> dict[str, str]:
    """The job's environment, set by its batch script on top of ``sbatch``'s from-scratch one
    (never the daemon's); Slurm adds its own ``SLURM_*`` and ``CUDA_VISIBLE_DEVICES``."""
    try:
        user = pwd.getpwuid(spec.uid).pw_name
    except KeyError:
        user = str(spec.uid)
    return {"PATH": jobfiles.DEFAULT_PATH, "HOME": str(home), "USER": user, "LOGNAME": user,
            "LANG": "C.UTF-8", **spec.env}  # fmt: skip
