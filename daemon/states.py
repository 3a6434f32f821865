"""The job state machine: which transitions are legal. Pure, no I/O.

::

    queued ──> planned ──> running ──> succeeded
      │  ^        │           ├──────> failed
      │  └────────┘           └──────> cancelled
      └──(from queued or planned)───> cancelled | expired | failed

``expired``: the deadline passed before the job started. ``failed`` from queued/planned: the
policy rejected the job (it fits no device) or its launch failed. ``running -> queued`` only
when the executor proves a launch interrupted by a daemon crash never started the job.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final, Literal, get_args

from daemon.errors import DaemonError

__all__ = [
    "ACTIVE_STATES",
    "FINAL_STATES",
    "STATES",
    "TRANSITIONS",
    "WAITING_STATES",
    "InvalidTransitionError",
    "JobState",
    "check_transition",
]

JobState = Literal["queued", "planned", "running", "succeeded", "failed", "cancelled", "expired"]
STATES: Final[tuple[str, ...]] = get_args(JobState)
FINAL_STATES: Final = frozenset({"succeeded", "failed", "cancelled", "expired"})
ACTIVE_STATES: Final = frozenset({"queued", "planned", "running"})
WAITING_STATES: Final = ("queued", "planned")  # not started yet

TRANSITIONS: Final = MappingProxyType(
    {
        "queued": frozenset({"planned", "running", "cancelled", "expired", "failed"}),
        "planned": frozenset({"queued", "running", "cancelled", "expired", "failed"}),
        "running": frozenset({"succeeded", "failed", "cancelled", "queued"}),
        "succeeded": frozenset(),
        "failed": frozenset(),
        "cancelled": frozenset(),
        "expired": frozenset(),
    }
)


class InvalidTransitionError(DaemonError):
    """A state change the machine does not allow (names the job and both states)."""


def check_transition(job_id: str, current: str, new: str) -> None:
    """Raise unless ``current -> new`` is legal for ``job_id``.

    Raises:
        InvalidTransitionError: an unknown state or a forbidden transition.
    """
    if new not in TRANSITIONS:
        raise InvalidTransitionError(f"job {job_id}: unknown state {new!r}")
    if new not in TRANSITIONS.get(current, frozenset()):
        raise InvalidTransitionError(f"job {job_id}: cannot go from {current!r} to {new!r}")
