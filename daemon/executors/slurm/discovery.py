"""The Slurm executor's discovery and capacity (:class:`SlurmDiscovery`, a base of
:class:`~daemon.executors.slurm.executor.SlurmExecutor`): a region's GPUs from its partition's
nodes (``scontrol show node``), asked again while Slurm has not answered, and, every planning
round, which of them are down, drained, reserved, in a partition not up (its state read
again at most every ``partitions_ttl_s`` while all are up:
:mod:`~daemon.executors.slurm.partitions`), or held by others' jobs
(:mod:`~daemon.executors.slurm.capacity`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import structlog

from daemon.executors.errors import CommandMissingError, ExecutorError, ExecutorUnavailableError
from daemon.executors.slurm import commands as cmd
from daemon.executors.slurm.capacity import Layout, mark_devices, open_to
from daemon.executors.slurm.notes import Notes
from daemon.executors.slurm.owngpus import OwnGpus
from daemon.executors.slurm.parse import RunningRow
from daemon.executors.slurm.partitions import PartitionStates
from daemon.executors.slurm.queries import SlurmQueries
from daemon.executors.slurm.reach import Reach
from daemon.executors.slurm.scontrol import NodeRow, Reservation, active_by_node
from daemon.settings.sbatch_options import given
from policies import Device

__all__ = ["SlurmDiscovery", "asked_reservations"]

log = structlog.get_logger("daemon.executors.slurm.executor")


class SlurmDiscovery:
    """Discovery and capacity of the Slurm regions; the state is the executor's."""

    _targets: dict[str, cmd.Target]
    _reach: Reach
    _q: SlurmQueries
    _gpu_names: dict[str, dict[str, str]]
    _known: dict[str, str]
    _layout: dict[str, Layout]
    _undiscovered: dict[str, str]
    _mine: set[str]
    _notes: Notes  # what is logged once
    _submitter: str | None  # the user every job is submitted as; None: each job's owner
    _own_gpus: OwnGpus  # carbond's jobs' planned GPUs, and Slurm's where others
    _partitions: PartitionStates  # partition states, kept while all up (for a while)

    def discover(self, region: str, now: datetime | None = None) -> list[tuple[int, str]]:
        """The GPUs of ``region``'s partition, node by node (index = position), as
        ``(index, GPU catalog name)``; remembered to map device ids to nodes. A region Slurm
        does not answer for is :meth:`undiscovered` until a discovery of it gets an answer.
        ``now``: the service's time (None at start-up: during an outage Slurm is pinged first).

        Raises:
            ExecutorUnavailableError: Slurm does not answer.
            ExecutorError: Slurm refused, or a GRES type matches no catalog GPU.
        """
        self._reach.at(now)
        target = self._q.target(region)
        try:
            nodes = self._q.nodes(target.cluster)
        except ExecutorUnavailableError as exc:
            self._undiscovered.setdefault(region, str(exc))  # the first message, kept stable
            raise
        self._undiscovered.pop(region, None)
        layout: list[str] = []
        types: list[str] = []
        found: list[tuple[int, str]] = []
        for node in sorted(nodes, key=lambda n: n.name):
            if target.partition not in node.partitions:
                continue
            for gres in node.gres:
                if gres.name != target.gres:
                    continue
                gpu = self._gpu_name(region, gres.type)
                for _ in range(gres.count):
                    found.append((len(layout), gpu))
                    layout.append(node.name)
                    types.append(gres.type)
        self._layout[region] = Layout(tuple(layout), tuple(types))
        log.info("slurm_gpus_discovered", region=region, partition=target.partition,
                 gpus=len(found), nodes=sorted(set(layout)))  # fmt: skip
        return found

    def undiscovered(self) -> dict[str, str]:
        """The regions whose GPUs Slurm did not answer for (at start-up, or at a reload), each
        with what the failing command said."""
        return dict(self._undiscovered)

    def rediscover(self, now: datetime) -> dict[str, list[tuple[int, str]]]:
        """:meth:`discover` of each :meth:`undiscovered` region, as far as :class:`Reach`
        lets Slurm be asked at ``now`` (during an outage nothing runs before its retry time,
        and then only after ``scontrol ping`` answers UP); the regions found. A region whose
        answer cannot be used (a GRES type the catalog does not know) is logged
        (``slurm_discovery_failed``), is no longer undiscovered and stays without GPUs."""
        found = {}
        for region in sorted(self._undiscovered):
            try:
                found[region] = self.discover(region, now)
            except ExecutorUnavailableError:
                continue  # asked again on a later round
            except ExecutorError as exc:
                log.error("slurm_discovery_failed", region=region, error=str(exc))
        return found

    def _gpu_name(self, region: str, gres_type: str) -> str:
        mapped = self._gpu_names.get(region, {}).get(gres_type)
        if mapped is not None:
            return mapped
        if (name := self._known.get(gres_type.lower())) is not None:
            return name
        raise ExecutorError(
            f"region {region}: GRES type {gres_type!r} is no GPU of the catalog; map it in "
            f'[regions.slurm] gpu_types (e.g. {{ {gres_type or "untyped"} = "A100-80GB" }})'
        )

    def available(self, devices: Sequence[Device], now: datetime) -> list[Device]:
        """``devices`` with this executor's regions checked against Slurm: GPUs of down or
        drained nodes, and of partitions not up (:meth:`_partition_up`), unavailable; GPUs
        that jobs carbond did not submit hold busy until those jobs' expected end, and so
        are those carbond's own jobs hold beyond their plans (their owner changed their GRES:
        :class:`~daemon.executors.slurm.owngpus.OwnGpus`). A region
        Slurm does not answer for is unavailable altogether (``slurm_unreachable``, logged
        once per cluster and error until Slurm answers it), and so is one whose ``scontrol``
        this host cannot run: its nodes' states cannot be read, nor its held jobs released
        (:class:`~daemon.executors.errors.CommandMissingError`, which
        :class:`~daemon.executors.slurm.reach.Reach` logged and ``health.json`` names)."""
        self._reach.at(now)
        out = list(devices)
        by_cluster: dict[str | None, list[str]] = defaultdict(list)
        for region, target in self._targets.items():
            by_cluster[target.cluster].append(region)
        for cluster, regions in by_cluster.items():
            try:
                nodes = self._q.nodes(cluster)
                ours = {self._targets[r].partition for r in regions}
                states = self._partitions.get(cluster, ours, now, self._q.partitions)
                running = {r: self._q.running(self._targets[r]) for r in regions}
            except ExecutorError as exc:
                said = self._notes.unreachable.get(cluster)
                if not isinstance(exc, CommandMissingError) and said != str(exc):  # once each
                    self._notes.unreachable[cluster] = str(exc)
                    log.error("slurm_unreachable", cluster=cluster, regions=regions,
                              error=str(exc))  # fmt: skip
                out = [replace(d, available=False) if d.region in regions else d for d in out]
                continue
            self._notes.unreachable.pop(cluster, None)
            booked = _Booked(self._q, cluster)  # read at most once this round, if needed
            self._name_unusable_nodes(cluster, regions, nodes, booked)
            self._name_odd_running(cluster, [r for rows in running.values() for r in rows])
            for region in regions:
                if not self._partition_up(cluster, region, states):
                    out = [replace(d, available=False) if d.region == region else d for d in out]
                    continue
                others = [row for row in running[region] if row.slurm_id not in self._mine]
                mine = [row for row in running[region] if row.slurm_id in self._mine]
                others += self._own_gpus.extra(cluster, mine)  # GPUs beyond their plans
                asked = asked_reservations(self._targets[region])
                partition = self._targets[region].partition
                whose = booked.read() if asked and any(
                    n.reserved for n in nodes if partition in n.partitions) else None  # fmt: skip
                if whose is not None and self._denied(cluster, region, asked, booked):
                    out = [replace(d, available=False) if d.region == region else d for d in out]
                    continue
                out = mark_devices(out, region, self._layout.get(region), nodes, others, now,
                                   asked=asked, reservations=whose)  # fmt: skip
        return out

    def partition_state(self, region: str) -> str:
        """The state of ``region``'s partition as Slurm has it now (``UP``, ``DOWN``,
        ``DRAIN``, ``INACTIVE``; ``not in Slurm``).

        Raises:
            ExecutorError: Slurm did not answer, or refused.
        """
        target = self._q.target(region)
        return self._q.partitions(target.cluster).get(target.partition, "not in Slurm")

    def _partition_up(self, cluster: str | None, region: str, states: dict[str, str]) -> bool:
        """Whether ``region``'s partition takes and starts jobs (``State=UP``). One ``DOWN``
        (jobs queue, none starts: ``PartitionDown``), ``DRAIN`` or ``INACTIVE`` (none is
        taken), or gone from Slurm, makes the region's GPUs unavailable this round, logged
        once while it lasts (``slurm_partition_unavailable``; ``slurm_partition_up`` once it
        is up again)."""
        partition = self._targets[region].partition
        state = states.get(partition, "not in Slurm")
        said = self._notes.partitions.get((cluster, partition))
        if state == "UP":
            if said is not None:
                del self._notes.partitions[(cluster, partition)]
                log.info("slurm_partition_up", cluster=cluster, region=region,
                         partition=partition)  # fmt: skip
            return True
        if said != state:
            self._notes.partitions[(cluster, partition)] = state
            log.warning("slurm_partition_unavailable", cluster=cluster, region=region,
                        partition=partition, state=state)  # fmt: skip
        return False

    def _name_unusable_nodes(
        self,
        cluster: str | None,
        regions: Sequence[str],
        nodes: Sequence[NodeRow],
        booked: _Booked,
    ) -> None:
        """Log once per change each node of ``regions`` (in their partitions, or in their
        GPUs' layout) that new jobs cannot start on (:attr:`NodeRow.unusable_flags`: down,
        drained or draining, not responding, ...; or gone from Slurm, ``not in Slurm``; or
        closed by reservations, for the regions :func:`~daemon.executors.slurm.capacity.open_to`
        keeps off it: ``RESERVED``, in an active reservation they do not ask, or ``not in
        the reservation``, in none of those they ask) as
        ``slurm_node_unavailable``, with its state, Slurm's reason and the regions it is
        unavailable to, and as ``slurm_node_available`` once it is usable again."""
        listed = {node.name: node for node in nodes}
        of: dict[str, list[str]] = defaultdict(list)  # node -> the regions it has GPUs of
        for region in sorted(regions):
            partition, layout = self._targets[region].partition, self._layout.get(region)
            names = {n.name for n in nodes if partition in n.partitions}
            for name in sorted(names | set(layout.nodes if layout is not None else ())):
                of[name].append(region)
        said = self._notes.nodes
        for key in [k for k in said if k[0] == cluster and k[1] not in of]:
            del said[key]  # no region's node any more (a reload)
        for name, regions_of in sorted(of.items()):
            node, key, its = listed.get(name), (cluster, name), regions_of
            bad = node.unusable_flags if node is not None else ("not in Slurm",)
            if node is not None and not bad:  # closed by reservations to some regions?
                asks = {r: asked_reservations(self._targets[r]) for r in its}
                whose = booked.read() if node.reserved and any(asks.values()) else None
                kept_out = [r for r in its if not open_to(node, asks[r], whose)]
                closed = ("RESERVED",) if node.reserved else ("not in the reservation",)
                bad, its = (closed, kept_out) if kept_out else ((), its)
            if node is not None and not bad:
                if said.pop(key, None) is not None:
                    log.info("slurm_node_available", cluster=cluster, node=name,
                             state="+".join(node.state), regions=its)  # fmt: skip
            elif said.get(key) != bad:
                said[key] = bad
                state, reason = ("+".join(node.state), node.reason) if node else (bad[0], "")
                whose_of = booked.of(name) if bad == ("RESERVED",) else []
                log.warning("slurm_node_unavailable", cluster=cluster, node=name, state=state,
                            reason=reason, regions=its, reservations=whose_of)  # fmt: skip

    def _denied(
        self, cluster: str | None, region: str, asked: Sequence[str], booked: _Booked
    ) -> tuple[str, ...]:
        """The reservations ``region`` asks that refuse its jobs (:meth:`Reservation.admits`:
        ``Users=`` without its submitting user, ``_submitter``, where known; ``Accounts=``
        without its ``account``, where the table sets one): sbatch refuses a job asking
        any of them, "Access denied to requested reservation", however many it lists.
        Logged once per change (``slurm_reservation_denied``)."""
        user, account = self._submitter, self._targets[region].account
        rows = {r.name: r for r in booked.rows() or ()}
        denied = tuple(n for n in asked if n in rows and rows[n].admits(user, account) is False)
        said, key = self._notes.denied, (cluster, region)
        if denied and said.get(key) != denied:
            log.warning("slurm_reservation_denied", cluster=cluster, region=region,
                        reservations=list(denied), user=user, account=account)  # fmt: skip
        if denied:
            said[key] = denied
        else:
            said.pop(key, None)
        return denied

    def _name_odd_running(self, cluster: str | None, rows: Sequence[RunningRow]) -> None:
        """Log once while it lasts each job carbond did not submit whose running row squeue
        printed unreadable (``slurm_running_unreadable``): an unread end is taken as an hour
        from now, as when Slurm gives none; a row cut short or an unread host list counts no
        GPUs of that job this round; every other job's GPUs are counted as usual."""
        odd = {r.slurm_id: r.unreadable for r in rows
               if r.unreadable and r.slurm_id not in self._mine}  # fmt: skip
        said = self._notes.running_odd.get(cluster, set())
        for slurm_id, fields in odd.items():
            if slurm_id not in said:
                log.warning("slurm_running_unreadable", cluster=cluster, slurm_id=slurm_id,
                            fields=list(fields))  # fmt: skip
        self._notes.running_odd[cluster] = set(odd)


class _Booked:
    """The active reservations of a cluster's nodes, asked of Slurm (``scontrol show
    reservation``) at most once per round, and only in a round that needs them: one that
    names a node newly reserved (the node's state, ``IDLE+RESERVED``, does not say whose
    reservation keeps it), or where a region whose jobs ask a reservation has a reserved
    node (which it may use only while that node is in one it asks: read every such round,
    as a node may pass from one reservation straight to another, staying ``RESERVED``)."""

    def __init__(self, queries: SlurmQueries, cluster: str | None) -> None:
        self._q, self._cluster = queries, cluster
        self._rows: list[Reservation] | None = None
        self._read: dict[str, tuple[str, ...]] | None = None
        self._asked = False

    def rows(self) -> list[Reservation] | None:
        """The cluster's reservations; None when Slurm's answer could not be had or read
        (logged ``slurm_reservations_unread``; asked once a round all the same)."""
        if not self._asked:
            self._asked = True
            try:
                self._rows = self._q.reservations(self._cluster)
                self._read = active_by_node(self._rows)
            except ExecutorError as exc:
                log.warning("slurm_reservations_unread", cluster=self._cluster, error=str(exc))
        return self._rows

    def read(self) -> dict[str, tuple[str, ...]] | None:
        """Each node's active reservations; None when not known (:meth:`rows`)."""
        self.rows()
        return self._read

    def of(self, node: str) -> list[str] | None:
        """The names of ``node``'s active reservations; None when they are not known
        (:meth:`read`; the node is named all the same)."""
        read = self.read()
        return None if read is None else list(read.get(node, ()))


def asked_reservations(target: cmd.Target) -> tuple[str, ...]:
    """The reservations ``target``'s jobs are submitted into (none: empty): those the last
    ``--reservation=A[,B]`` in its ``sbatch_options`` names (sbatch takes the last, and
    Slurm runs the job in whichever of them starts it first), or an abbreviation sbatch
    takes (``--res=NAME``), read as the config read it
    (:func:`daemon.settings.sbatch_options.given`): ``--reservation=`` is none."""
    names = [n for o in target.sbatch_options if (n := given(o, "reservation")) is not None]
    return tuple(n for n in names[-1].split(",") if n) if names else ()
