"""A Slurm executor stand-in for tests of GPUs found after start: its scheduler did not answer
when the daemon started, and answers once the test says so (``LateSlurm``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from daemon.testing import RecordingExecutor


class LateSlurm(RecordingExecutor):
    """A Slurm stand-in whose scheduler did not answer at start: it finds ``found`` (its
    regions' GPUs) when asked again once ``up`` is set."""

    def __init__(self, found: Mapping[str, Sequence[tuple[int, str]]]) -> None:
        super().__init__("slurm")
        self._found, self._answered, self.up = dict(found), False, False

    def undiscovered(self) -> Mapping[str, str]:
        return {} if self._answered else dict.fromkeys(self._found, "slurmctld down")

    def rediscover(self, now: datetime) -> Mapping[str, Sequence[tuple[int, str]]]:
        self._answered = self.up
        return self._found if self.up else {}
