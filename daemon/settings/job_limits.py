"""``[executors.local.limits]``: the resource limits each local job runs under (a section of
:class:`~daemon.settings.executors.LocalExecutorSettings`; set by the job wrapper,
:data:`daemon.executors.wrapper.JOB_LIMITS`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

__all__ = ["JobLimitsSettings"]


class JobLimitsSettings(BaseModel):
    """Resource limits set in each local job's process before it starts (``setrlimit``, soft
    and hard alike, so the job cannot raise them); left out (None): the daemon's own, which the
    unit sets (``LimitNOFILE=65536``); ``"unlimited"``: as high as the daemon's hard limit.
    One above the daemon's hard limit is that limit: only a privileged process may raise one
    (the job's stderr says so).

    ``nproc``: processes and threads of the job's *user* across the node (``RLIMIT_NPROC``
    counts all of them, their logins and other jobs too, not this job's), unset by default;
    ``nofile``: open files of each process; ``core_bytes``: the largest core dump (0, the
    default: a crashing model server would dump its whole memory into its working directory);
    ``fsize_bytes``: the largest file a job's process may write (its stdout and stderr logs
    included; past it, ``SIGXFSZ`` ends it), unset by default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    nproc: int | Literal["unlimited"] | None = None
    nofile: int | Literal["unlimited"] | None = None
    core_bytes: int | Literal["unlimited"] | None = 0
    fsize_bytes: int | Literal["unlimited"] | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _count_or_unlimited(cls, value: Any, info: ValidationInfo) -> Any:
        """One problem naming what is wanted (the union's own were two, one per branch)."""
        least = 0 if info.field_name == "core_bytes" else 1
        if value is None or value == "unlimited":
            return value
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(
                f'must be a whole number of at least {least} or "unlimited" (leave it out '
                f"for the daemon's own limit), got {value!r}"
            )
        return value

    def as_rlimits(self) -> dict[str, int]:
        """The limits set, by name, ``"unlimited"`` as ``RLIM_INFINITY`` (-1)."""
        return {
            name: -1 if value == "unlimited" else int(value)
            for name, value in self.model_dump().items()
            if value is not None
        }
