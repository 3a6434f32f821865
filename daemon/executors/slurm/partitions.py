"""The states of a cluster's partitions (``scontrol show partition``), read at most once every
``ttl_s`` while all of carbond's partitions there are ``UP`` (:class:`PartitionStates`), not
every planning round: a partition not up is read again every round (its return is noticed at
once), and a sign that one went down (a carbond job pending ``PartitionDown``, an ``sbatch``
refused) reads them again at the next round; an ``sbatch`` refused has its partition read at
once (:func:`closed_now`): one closed since it was read makes the job wait, not fail. Pure but
for the injected read."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime

from daemon.executors.errors import ExecutorError

__all__ = ["DOWN_REASONS", "PARTITIONS_TTL_S", "PartitionStates", "closed_now"]

# How long all-UP partition states are taken as they were read (the default; two planning
# rounds at the default plan_s).
PARTITIONS_TTL_S = 60.0
# squeue reasons of a pending job whose partition does not start jobs: read them again
DOWN_REASONS = frozenset({"PartitionDown", "PartitionInactive"})
# sbatch's words (Slurm 22.05) for a partition set DRAIN or INACTIVE: "Batch job submission
# failed: Required partition not available (inactive or drain)"
_CLOSED_SAID = "partition not available"


@dataclass(slots=True)
class PartitionStates:
    """Partition states by cluster, with when they were read."""

    ttl_s: float = PARTITIONS_TTL_S
    _read: dict[str | None, tuple[datetime, dict[str, str]]] = field(default_factory=dict)

    def get(
        self,
        cluster: str | None,
        mine: Collection[str],
        now: datetime,
        read: Callable[[str | None], dict[str, str]],
    ) -> dict[str, str]:
        """``cluster``'s partition states: ``read`` (``scontrol show partition``) unless
        those read less than ``ttl_s`` before ``now`` had every partition of ``mine`` (its
        regions') ``UP``.

        Raises:
            ExecutorError: what ``read`` raises (nothing is kept then).
        """
        kept = self._read.get(cluster)
        if kept is not None:
            at, states = kept
            fresh = 0 <= (now - at).total_seconds() < self.ttl_s
            if fresh and all(states.get(p) == "UP" for p in mine):
                return states
        states = read(cluster)
        self._read[cluster] = (now, states)
        return states

    def changed(self, cluster: str | None) -> None:
        """A sign that ``cluster``'s partitions may have changed: read them at the next
        :meth:`get`."""
        self._read.pop(cluster, None)


def closed_now(partition: str, stderr: str, read: Callable[[], dict[str, str]]) -> str | None:
    """Why ``partition`` took no job now, after an ``sbatch`` there was refused (``stderr``):
    its state as ``read`` now (``scontrol show partition``; the one kept for ``ttl_s`` may be
    from before an operator set it ``DRAIN`` or ``INACTIVE``) when that is not ``UP``, or
    sbatch's own words where they say so (``Required partition not available``, also when
    the state cannot be read); None when it takes jobs (the refusal is the job's own)."""
    try:
        state = read().get(partition, "not in Slurm")
    except ExecutorError:  # not read: sbatch's words alone decide
        state = "UP"
    if state != "UP":
        return f"partition {partition} is {state} now"
    if _CLOSED_SAID in stderr.lower():
        return f"partition {partition} is not available now (sbatch says so)"
    return None
