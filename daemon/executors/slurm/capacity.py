"""A Slurm region's GPUs as the planner should see them (pure).

A region's device ``<region>/<i>`` is the ``i``-th GPU of its partition, counted node by node in
name order (:class:`Layout`, learnt at discovery). Each planning round the executor reads the
nodes (``scontrol show node``) and the partition's running jobs (``squeue``) and
:func:`mark_devices` applies them:

- every GPU of a node that is down, drained, draining or not responding is unavailable, and so
  is every GPU of a node in an active reservation (``RESERVED``: booked for others, or for
  maintenance), where a job that does not ask for that reservation cannot start; a region
  whose jobs are submitted into reservations (``--reservation=A[,B]`` in its
  ``sbatch_options``) may use only the nodes in one of them, active now (Slurm runs such a
  job there alone: elsewhere sbatch refuses it, "Requested node configuration is not
  available", or it waits for the reservation to start), as :func:`open_to` has it;
- on each node, as many GPUs as jobs carbond did not submit hold there are busy until the
  latest of those jobs' expected ends (their time limit; one hour when Slurm gives none),
  taken from the GPUs carbond itself does not already count busy.

A region whose GPUs were declared in the configuration has no layout: others' GPUs are then
counted over the whole partition.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from daemon.executors.slurm.parse import RunningRow
from daemon.executors.slurm.scontrol import NodeRow
from policies import Device

__all__ = ["UNKNOWN_END", "Layout", "mark_devices", "open_to"]

UNKNOWN_END = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Layout:
    """The node and GRES type (``t4``; empty: untyped) of each of a region's GPUs, by index."""

    nodes: tuple[str, ...]
    types: tuple[str, ...] = ()

    def _index(self, device_id: str) -> int | None:
        _, _, index = device_id.rpartition("/")
        if not index.isdigit() or int(index) >= len(self.nodes):
            return None
        return int(index)

    def node_of(self, device_id: str) -> str | None:
        """The node of ``<region>/<index>`` (None: not a GPU of this layout)."""
        i = self._index(device_id)
        return None if i is None else self.nodes[i]

    def type_of(self, device_id: str) -> str:
        """The GRES type of ``<region>/<index>`` (empty: untyped, or not a GPU of this
        layout)."""
        i = self._index(device_id)
        return "" if i is None or i >= len(self.types) else self.types[i]


def open_to(
    node: NodeRow,
    asked: Collection[str],
    reservations: Mapping[str, Sequence[str]] | None,
) -> bool:
    """Whether a job asking the reservations ``asked`` (none: empty) may start on ``node``
    as far as reservations go: one asking none, where the node is in none (not
    ``RESERVED``); one asking some, where the node is in one of them, active now
    (``reservations``: each node's active ones, from ``scontrol show reservation``; None:
    not known, so not there)."""
    if not asked:
        return not node.reserved
    if not node.reserved or reservations is None:
        return False
    return not set(asked).isdisjoint(reservations.get(node.name, ()))


def mark_devices(
    devices: Sequence[Device],
    region: str,
    layout: Layout | None,
    nodes: Sequence[NodeRow],
    others: Sequence[RunningRow],
    now: datetime,
    *,
    asked: Collection[str] = (),
    reservations: Mapping[str, Sequence[str]] | None = None,
) -> list[Device]:
    """``devices`` with ``region``'s GPUs marked from Slurm (see the module docstring);
    ``asked``: the reservations the region's jobs ask; ``reservations``: each node's active
    ones (None: not read; needed only where ``asked`` and a node is reserved)."""
    usable = {n.name: n.usable and open_to(n, asked, reservations) for n in nodes}
    held: Counter[str | None] = Counter()
    until: dict[str | None, datetime] = {}
    for job in others:
        for node in job.nodes:
            key: str | None = node if layout is not None and node in layout.nodes else None
            held[key] += job.gpus_per_node
            end = job.end if job.end is not None and job.end > now else now + UNKNOWN_END
            until[key] = max(end, until.get(key, end))
    out = list(devices)
    for i, device in enumerate(out):
        if device.region != region:
            continue
        home = layout.node_of(device.device_id) if layout is not None else None
        if home is not None and not usable.get(home, False):
            out[i] = replace(device, available=False)
            continue
        free = device.available and (device.busy_until is None or device.busy_until <= now)
        for key in (home, None):
            if free and held[key] > 0:
                held[key] -= 1
                out[i] = replace(device, busy_until=until[key])
                break
    return out
