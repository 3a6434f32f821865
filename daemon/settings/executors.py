"""The ``[executors]`` section: how jobs start in the regions that name each executor
(``executors.local``, with its ``limits``: :mod:`daemon.settings.job_limits`;
``executors.simulated``; ``executors.slurm``, each region's partition being in its
``[regions.slurm]`` table)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from daemon.settings.job_limits import JobLimitsSettings
from daemon.settings.sections import (
    MAX_DURATION_S,
    ConfigPath,
    Section,
    absolute_dir,
    error_at,
    path_given,
)

__all__ = [
    "ExecutorSettings",
    "LocalExecutorSettings",
    "SimulatedExecutorSettings",
    "SlurmExecutorSettings",
]


MIN_MEMORY_CAP_BYTES = 1 << 20  # 1 MiB: below it no job (nor its wrapper) can start
MIN_PIDS_CAP = 2  # the job's wrapper and the job's first process count
MAX_PIDS_CAP = 4_194_304  # the kernel's PID_MAX_LIMIT: pids.max refuses more


class LocalExecutorSettings(Section):
    """Jobs as local process groups (``executor = "local"`` in a region).

    ``memory_max_bytes``, ``memory_high_bytes``, ``memory_swap_max_bytes``, ``pids_max``: caps
    written to each job's own cgroup (``memory.max``, ``memory.high``, ``memory.swap.max``,
    ``pids.max``) before its wrapper joins it, so a runaway job is stopped at its cgroup (the
    OOM killer, a refused fork), not the whole unit; left out (None): no cap, but
    ``memory_swap_max_bytes`` is 0 where ``memory_max_bytes`` is set (no swap past it:
    :meth:`daemon.executors.local_cgroup_caps.JobCaps.of_settings`). Only where jobs get
    cgroups (``cgroup``) and the subtree's ``memory``/``pids`` controller can be enabled:
    :mod:`daemon.executors.local_cgroup_caps`.
    """

    grace_s: float = Field(
        default=30.0, gt=0, le=MAX_DURATION_S, description="SIGTERM to SIGKILL on cancel"
    )
    allow_root_jobs: bool = True
    limits: JobLimitsSettings = JobLimitsSettings()
    cgroup: str = Field(
        default="auto",
        description='"auto" (the cgroup v2 subtree systemd delegates: Delegate=yes), "off", '
        "or the absolute path of a cgroup the daemon may write: each job gets one of its own",
    )

    memory_max_bytes: int | None = None
    memory_high_bytes: int | None = None
    memory_swap_max_bytes: int | None = None
    pids_max: int | None = None

    @field_validator(
        "memory_max_bytes", "memory_high_bytes", "memory_swap_max_bytes", "pids_max", mode="before"
    )
    @classmethod
    def _cap(cls, value: Any, info: ValidationInfo) -> Any:
        """One problem naming what is wanted: a whole number (of bytes), at least the floor."""
        pids = info.field_name == "pids_max"
        least, most = (MIN_PIDS_CAP, MAX_PIDS_CAP) if pids else (MIN_MEMORY_CAP_BYTES, None)
        swap = info.field_name == "memory_swap_max_bytes"
        least = 0 if swap else least  # 0: no swap at all
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < least
            or (most is not None and value > most)
        ):
            what = "a whole number" if pids else "a whole number of bytes"
            span = f"from {least} to {most}" if most is not None else f"of at least {least}"
            hint = "0: no swap" if swap else "leave it out for no cap"
            raise ValueError(f"must be {what} {span} ({hint}), got {value!r}")
        return value

    @model_validator(mode="after")
    def _high_below_max(self) -> LocalExecutorSettings:
        high, top = self.memory_high_bytes, self.memory_max_bytes
        if high is not None and top is not None and high > top:
            raise error_at(
                ("memory_high_bytes",),
                f"{high} is above memory_max_bytes ({top}): memory.high throttles a job "
                "before memory.max, so it must not be higher",
                high,
            )
        return self

    @field_validator("cgroup")
    @classmethod
    def _cgroup_setting(cls, value: str) -> str:
        if value not in ("auto", "off") and not value.startswith("/"):
            raise ValueError(f'{value!r}: "auto", "off" or an absolute path to a cgroup')
        return value


class SimulatedExecutorSettings(Section):
    """Process-free jobs for replay and the demo (``executor = "simulated"``)."""

    truth_factor: float = Field(default=1.0, gt=0)
    noise_sigma: float = Field(default=0.0, ge=0)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    seed: int = 0


class SlurmExecutorSettings(Section):
    """How carbond talks to Slurm (``executor = "slurm"`` regions; each region's partition is
    in its ``[regions.slurm]`` table).

    ``bin_dir``: where ``sbatch``, ``squeue``, ``sacct``, ``scancel``, ``scontrol`` are, an
    absolute path (left out: ``PATH``); ``command_timeout_s``: the most one Slurm command may take;
    ``accounting_timeout_s``: the most one ``sacct`` may take (a hung slurmdbd then delays
    only the ends that need it); ``pending_grace_s``: how long a released job may stay pending
    (the partition busy with others' work) before carbond takes it back and plans it again;
    ``cut_short_limit_s``: how long a job gone from ``squeue`` may keep a cut-short ``sacct``
    row (its state unknown) before it ends ``failed``, or an ended one without the ``End``
    or exit code sacct has not recorded yet (counted in memory: afresh on restart);
    ``allow_root_jobs``: whether a job submitted by root (uid 0) is submitted to Slurm, where
    it runs as root (as ``executors.local.allow_root_jobs`` for local jobs).
    """

    bin_dir: ConfigPath | None = None
    command_timeout_s: float = Field(default=30.0, gt=0, le=MAX_DURATION_S)
    accounting_timeout_s: float = Field(default=10.0, gt=0, le=MAX_DURATION_S)
    pending_grace_s: float = Field(default=300.0, gt=0, le=MAX_DURATION_S)
    cut_short_limit_s: float = Field(default=600.0, gt=0, le=MAX_DURATION_S)
    allow_root_jobs: bool = True

    @field_validator("bin_dir", mode="before")
    @classmethod
    def _bin_dir_given(cls, value: Any) -> Any:
        return path_given(value, "leave it out to find the Slurm commands on PATH")

    @field_validator("bin_dir")
    @classmethod
    def _absolute_bin_dir(cls, value: Path | None) -> Path | None:
        return absolute_dir(value)  # where doctor found scontrol, the daemon must too


class ExecutorSettings(Section):
    """Per-executor options."""

    local: LocalExecutorSettings = LocalExecutorSettings()
    simulated: SimulatedExecutorSettings = SimulatedExecutorSettings()
    slurm: SlurmExecutorSettings = SlurmExecutorSettings()
