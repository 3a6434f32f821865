"""``scontrol --oneliner show node|partition|reservation`` (and ``scontrol ping``): their argv,
and their answers as frozen values (pure; tested against outputs recorded from Slurm 22.05).

Each line holds ``Key=value`` pairs, one node (partition, reservation) per line; ``Reason=``
runs to the end of its value and may contain spaces. A line these parsers cannot read raises
:class:`~daemon.executors.slurm.parse.SlurmOutputError` naming the command and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from daemon.executors.slurm.counts import read_count
from daemon.executors.slurm.listing import data_lines
from daemon.executors.slurm.parse import SlurmOutputError, expand_hostlist

__all__ = [
    "GresCount",
    "NodeRow",
    "Reservation",
    "active_by_node",
    "config_argv",
    "config_value",
    "nodes_argv",
    "parse_nodes",
    "parse_partitions",
    "parse_reservations",
    "partitions_argv",
    "ping_argv",
    "reservations_argv",
]


@dataclass(frozen=True, slots=True)
class GresCount:
    """``gpu:t4:2``: name ``gpu``, type ``t4`` (empty when untyped), count 2."""

    name: str
    type: str
    count: int


_UNUSABLE = frozenset({
    "DOWN", "DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "NOT_RESPONDING", "POWERED_DOWN",
    "POWERING_DOWN", "INVALID_REG", "FUTURE", "UNKNOWN",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One node of ``scontrol show node``: its partitions, state flags, GRES and the reason an
    operator gave for draining it."""

    name: str
    partitions: tuple[str, ...]
    state: tuple[str, ...]
    gres: tuple[GresCount, ...]
    reason: str

    @property
    def usable(self) -> bool:
        """False when the node is down, drained or draining, failing, not responding or
        powered off: no new job can start there."""
        return not self.unusable_flags

    @property
    def unusable_flags(self) -> tuple[str, ...]:
        """The flags of its state that keep new jobs off the node (:attr:`usable`), in
        Slurm's order (``("DOWN", "NOT_RESPONDING")``); empty: usable."""
        return tuple(flag for flag in self.state if flag in _UNUSABLE)

    @property
    def reserved(self) -> bool:
        """True while the node is in an active reservation (``RESERVED``; maintenance ones add
        ``MAINTENANCE``): only jobs that ask for that reservation may start there."""
        return "RESERVED" in self.state


_PAIR = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_/]*)=")


def _pairs(line: str) -> dict[str, str]:
    """``Key=value`` pairs of an ``scontrol --oneliner`` line; ``Reason`` keeps its spaces."""
    matches = list(_PAIR.finditer(line))
    pairs: dict[str, str] = {}
    for k, m in enumerate(matches):  # none on a line without pairs ("No nodes in the system")
        end = matches[k + 1].start() if k + 1 < len(matches) else len(line)
        value = line[m.end() : end].strip()
        pairs.setdefault(m.group(1), value)
        if m.group(1) == "Reason":  # free text to the end of the line
            pairs["Reason"] = line[m.end() :].strip()
            break
    return pairs


def _gres(text: str) -> tuple[GresCount, ...]:
    """``gpu:t4:2,shard:4`` (``(null)`` or empty: none); ``(S:0)`` socket suffixes dropped."""
    found = []
    for item in re.sub(r"\([^)]*\)", "", text).split(","):
        parts = item.strip().split(":")
        count = read_count(parts[-1])
        if not parts[0] or parts[0] == "null" or count is None:
            continue
        kind = parts[1] if len(parts) == 3 else ""
        found.append(GresCount(parts[0], kind, count))
    return tuple(found)


def parse_nodes(stdout: str) -> list[NodeRow]:
    """Nodes of ``scontrol --oneliner show node``.

    Raises:
        SlurmOutputError: a node line without ``NodeName``.
    """
    nodes = []
    for line in data_lines(stdout):
        pairs = _pairs(line)
        if "NodeName" not in pairs:
            raise SlurmOutputError(f"scontrol show node: no NodeName in {line!r}")
        nodes.append(
            NodeRow(
                name=pairs["NodeName"],
                partitions=tuple(p for p in pairs.get("Partitions", "").split(",") if p),
                state=tuple(s for s in pairs.get("State", "").split("+") if s),
                gres=_gres(pairs.get("Gres", "")),
                reason=pairs.get("Reason", ""),
            )
        )
    return nodes


def parse_partitions(stdout: str) -> dict[str, str]:
    """Each partition's ``State`` (``UP``, ``DOWN``, ``DRAIN``, ``INACTIVE``) from
    ``scontrol --oneliner show partition``.

    Raises:
        SlurmOutputError: a partition line without ``PartitionName``.
    """
    states = {}
    for line in data_lines(stdout):
        pairs = _pairs(line)
        if "PartitionName" not in pairs:
            raise SlurmOutputError(f"scontrol show partition: no PartitionName in {line!r}")
        states[pairs["PartitionName"]] = pairs.get("State", "")
    return states


@dataclass(frozen=True, slots=True)
class Reservation:
    """One reservation of ``scontrol show reservation``: its name, whether it is active now,
    its nodes (expanded) and who may use it (``Users=``, ``Accounts=``: empty for
    ``(null)``, any; a name with a leading ``-`` excludes: ``Users=-bob`` is anyone but bob)."""

    name: str
    active: bool
    nodes: tuple[str, ...]
    users: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()

    def admits(self, user: str | None, account: str | None) -> bool | None:
        """Whether a job of ``user`` charged to ``account`` may use it (Slurm 22.05: it
        must pass both lists where both are given); None where a list it has is asked of
        a name not known (None)."""
        verdicts = [_admits(self.users, user), _admits(self.accounts, account)]
        if False in verdicts:
            return False
        return None if None in verdicts else True


def _admits(names: tuple[str, ...], name: str | None) -> bool | None:
    if not names:
        return True
    if name is None:
        return None
    if all(n.startswith("-") for n in names):
        return f"-{name}" not in names
    return name in names


def _names(text: str) -> tuple[str, ...]:
    return tuple(n for n in text.split(",") if n and n != "(null)")


def parse_reservations(stdout: str) -> list[Reservation]:
    """The reservations of ``scontrol --oneliner show reservation`` (``State=ACTIVE``:
    active; its ``Nodes`` host list expanded); ``No reservations in the system``: none.

    Raises:
        SlurmOutputError: a reservation line without ``ReservationName``, or its host list
            unreadable.
    """
    found = []
    for line in data_lines(stdout):
        if not (pairs := _pairs(line)) and line.startswith("No reservations"):
            continue
        if "ReservationName" not in pairs:
            raise SlurmOutputError(f"scontrol show reservation: no ReservationName in {line!r}")
        found.append(Reservation(pairs["ReservationName"], pairs.get("State") == "ACTIVE",
                                 expand_hostlist(pairs.get("Nodes", "")),
                                 _names(pairs.get("Users", "")),
                                 _names(pairs.get("Accounts", ""))))  # fmt: skip
    return found


def active_by_node(reservations: list[Reservation]) -> dict[str, tuple[str, ...]]:
    """Each node's active reservations, by name."""
    found: dict[str, list[str]] = {}
    for r in reservations:
        for node in r.nodes if r.active else ():
            found.setdefault(node, []).append(r.name)
    return {node: tuple(names) for node, names in found.items()}


def nodes_argv(scontrol: str, cluster: str | None) -> list[str]:
    """``scontrol show node`` one node per line (``--oneliner``)."""
    return [scontrol, *([f"--clusters={cluster}"] if cluster else []), "--oneliner", "show", "node"]


def partitions_argv(scontrol: str, cluster: str | None) -> list[str]:
    """``scontrol show partition`` one partition per line, hidden ones too (``--all``)."""
    where = [f"--clusters={cluster}"] if cluster else []
    return [scontrol, *where, "--all", "--oneliner", "show", "partition"]


def reservations_argv(scontrol: str, cluster: str | None) -> list[str]:
    """``scontrol show reservation`` one reservation per line (``--oneliner``)."""
    where = [f"--clusters={cluster}"] if cluster else []
    return [scontrol, *where, "--oneliner", "show", "reservation"]


def ping_argv(scontrol: str, cluster: str | None) -> list[str]:
    """``scontrol ping``: whether the controller answers (one connection attempt, no retries:
    milliseconds when its port refuses, where any other command retries for about 9 s)."""
    return [scontrol, *([f"--clusters={cluster}"] if cluster else []), "ping"]


def config_argv(scontrol: str, cluster: str | None) -> list[str]:
    """``scontrol show config``: the controller's configuration, ``Key = value`` a line."""
    return [scontrol, *([f"--clusters={cluster}"] if cluster else []), "show", "config"]


def config_value(stdout: str, key: str) -> str | None:
    """``key``'s value in ``scontrol show config`` (``AcctGatherEnergyType   =
    acct_gather_energy/pm_counters``); None where it has no such line."""
    for line in data_lines(stdout):
        name, sep, value = line.partition("=")
        if sep and name.strip() == key:
            return value.strip()
    return None
