"""What the Slurm executor remembers between calls of what it logged, since when a job waits
and why it cancelled a running job it refused (:class:`Notes`), in memory only: a restarted
daemon logs each condition once more and counts each wait afresh (and reads such a job's end
as Slurm's, ``slurm CANCELLED by uid 0``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["Notes"]

Key = tuple[str | None, str]  # (cluster, Slurm id): Slurm ids repeat across clusters


@dataclass(slots=True)
class Notes:
    """Each set or map is logged once while what it names lasts (forgotten when it ends, so a
    later occurrence is logged again), or says since when a job has waited."""

    # logged once
    sacct_failing: set[str | None] = field(default_factory=set)  # clusters whose sacct fails
    sacct_odd: set[Key] = field(default_factory=set)  # sacct rows unreadable
    queue_odd: set[Key] = field(default_factory=set)  # squeue rows unreadable now
    running_odd: dict[str | None, set[str]] = field(default_factory=dict)  # others' jobs
    unreadable: set[str] = field(default_factory=set)  # carbond jobs whose token is unreadable
    unreachable: dict[str | None, str] = field(default_factory=dict)  # slurm_unreachable said
    deferred: dict[str, str] = field(default_factory=dict)  # carbond job -> adoption put off
    partitions: dict[Key, str] = field(default_factory=dict)  # (cluster, partition) not UP
    nodes: dict[Key, tuple[str, ...]] = field(default_factory=dict)  # (cluster, node) unusable
    denied: dict[Key, tuple[str, ...]] = field(default_factory=dict)  # (cluster, region) refused
    # clusters whose energy plugin was read (None: none), and those a job ran unmeasured on
    energy_plugins: dict[str | None, str | None] = field(default_factory=dict)
    unmeasured: set[str | None] = field(default_factory=set)
    begins: dict[str, datetime] = field(default_factory=dict)  # held job -> planned start
    begin_said: dict[str, datetime] = field(default_factory=dict)  # -> its start moved to
    # waiting since
    no_end: dict[Key, datetime] = field(default_factory=dict)  # held jobs gone, no sacct end
    sacct_lost: dict[Key, datetime] = field(default_factory=dict)  # cut-short sacct job rows
    unrecorded: dict[Key, datetime] = field(default_factory=dict)  # ended, End not recorded
    # refused held jobs: the refusal of one cancelled running (or unheld), until its end is
    # read; how many times the hold of one still waiting failed
    refused: dict[Key, str] = field(default_factory=dict)
    hold_failed: dict[Key, int] = field(default_factory=dict)
