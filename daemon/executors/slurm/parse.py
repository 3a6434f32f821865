"""Slurm's answers as frozen values (pure; tested against outputs recorded from Slurm 22.05).

Formats (all under ``TZ=UTC``, see :mod:`daemon.executors.slurm.commands`):

- ``sbatch --parsable``: ``<id>`` or ``<id>;<cluster>``;
- ``squeue --format`` with ``|`` between fields; ``-M`` adds ``CLUSTER: name`` lines;
- ``sacct --parsable2``: read by :mod:`daemon.executors.slurm.acct`;
- ``scontrol --oneliner show ...``: read by :mod:`daemon.executors.slurm.scontrol`.

None of them asks for a job's or a step's name, carbond's own jobs' included (their owners may
rename them): Slurm prints a name as its user chose it, ``|`` and newlines included. Times
``N/A``, ``Unknown``, ``None`` and empty read as None.

One ``squeue`` answer covers every job of a poll (or every running job of a partition), so
what cannot be read is kept to its row, as ``sacct``'s is (:mod:`~daemon.executors.slurm.acct`):
a time or host list that cannot be read is unknown (None, no hosts) and named in the row's
``unreadable``; a line with the wrong number of fields (output cut short) is a *lost* row of
the job its first field names, its state empty (unknown this poll: neither waiting, running
nor ended). The other parsers raise :class:`SlurmOutputError` naming the command and the line
they could not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from daemon.executors.errors import ExecutorError
from daemon.executors.slurm.counts import COUNT, read_count
from daemon.executors.slurm.listing import LOST, cut_last, cut_why, data_lines

__all__ = [
    "MAX_HOSTS",
    "NO_VAL64",
    "QueueRow",
    "RunningRow",
    "SlurmOutputError",
    "allocated_count",
    "by_id",
    "expand_hostlist",
    "gpu_count",
    "parse_running",
    "parse_sbatch",
    "parse_squeue",
    "parse_time",
]

# What Slurm's commands print when the controller does not answer (22.05: "slurm_load_jobs
# error: Unable to contact slurm controller (connect failure)"; with --clusters, "'west' can't
# be reached now"; a controller that accepts but does not answer: "Socket timed out").
_UNREACHABLE = ("unable to contact slurm controller", "can't be reached now", "socket timed out")
NO_VAL64 = 2**63  # Slurm's "no value" markers are at the top of the 64-bit range
MAX_HOSTS = 65_536  # the most hosts a host list expands to: past any job's (or cluster's) nodes


class SlurmOutputError(ExecutorError):
    """A Slurm command answered something carbond cannot read (names the command and line)."""


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One ``squeue`` row: a job as the controller sees it now."""

    slurm_id: str
    state: str
    reason: str
    start: datetime | None
    end: datetime | None
    nodes: str
    partition: str
    unreadable: tuple[str, ...] = ()  # "End 'x'": fields read as unknown; a lost row: "row ..."

    @property
    def lost(self) -> bool:
        """The line had the wrong number of fields: nothing of it but its id is known."""
        return any(u.startswith(LOST) for u in self.unreadable)


@dataclass(frozen=True, slots=True)
class RunningRow:
    """A job holding resources now: its nodes (expanded), GPUs per node and expected end."""

    slurm_id: str
    user: str
    nodes: tuple[str, ...]
    gpus_per_node: int
    end: datetime | None
    unreadable: tuple[str, ...] = ()  # as :attr:`QueueRow.unreadable`


def parse_time(text: str) -> datetime | None:
    """A Slurm time printed under ``TZ=UTC`` (``2026-12-04T21:00:00``), or None for
    ``N/A``/``Unknown``/``None``/empty.

    Raises:
        ValueError: anything else.
    """
    text = text.strip()
    if text in {"", "N/A", "NONE", "Unknown", "None", "(null)"}:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


def parse_sbatch(stdout: str) -> tuple[str, str | None]:
    """``(slurm id, cluster or None)`` from ``sbatch --parsable``.

    Raises:
        SlurmOutputError: no job id in the answer.
    """
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    slurm_id, _, cluster = last.partition(";")
    if read_count(slurm_id) is None:
        raise SlurmOutputError(f"sbatch: no job id in its answer {stdout.strip()!r}")
    return slurm_id, cluster or None


def _lost(line: str, count: int) -> tuple[str, str] | None:
    """``(slurm id, why)`` of a ``|``-separated line without ``count`` fields; None when it
    has them."""
    parts = line.split("|")
    if len(parts) == count:
        return None
    why = f"{LOST} of {len(parts)} '|'-separated fields, not {count}: {line[:200]!r}"
    return parts[0].strip(), why


def _time(name: str, text: str, bad: list[str]) -> datetime | None:
    """``text`` read as a time, or None with ``name`` and ``text`` added to ``bad``."""
    try:
        return parse_time(text)
    except ValueError:
        bad.append(f"{name} {text.strip()!r}")
        return None


def parse_squeue(stdout: str) -> list[QueueRow]:
    """Rows of ``squeue --format=SQUEUE_FORMAT``. A time that cannot be read is None, named
    in the row's ``unreadable``; a line with the wrong number of fields is a
    :attr:`~QueueRow.lost` row of the job its first field names (state empty): one odd row
    does not hide the other jobs' states. So is a last line without its newline (squeue ends
    every line with one): the answer was cut short inside it, maybe inside its last field
    (``Partition``: ``alpha2`` cut to ``alpha``), whose field count alone cannot tell."""
    rows = []
    lines = list(data_lines(stdout))
    cut = cut_last(stdout, lines)
    for index, line in enumerate(lines):
        lost = _lost(line, 7)
        if lost is None and cut and index == len(lines) - 1:
            lost = line.split("|")[0].strip(), cut_why("squeue", stdout, "Partition", line)
        if lost is not None:
            rows.append(QueueRow(lost[0], "", "", None, None, "", "", (lost[1],)))
            continue
        i, state, reason, start, end, nodes, partition = line.split("|")
        bad: list[str] = []
        times = _time("StartTime", start, bad), _time("EndTime", end, bad)
        rows.append(QueueRow(i.strip(), state.strip(), reason.strip(), *times, nodes.strip(),
                             partition.strip(), tuple(bad)))  # fmt: skip
    return rows


def by_id(rows: list[QueueRow]) -> dict[str, QueueRow]:
    """``rows`` by Slurm id; a readable row wins over a lost one of the same id (a line cut
    in two leaves a fragment whose first field may read as any id)."""
    out: dict[str, QueueRow] = {}
    for row in rows:
        if row.slurm_id not in out or out[row.slurm_id].lost:
            out[row.slurm_id] = row
    return out


def gpu_count(text: str, gres: str = "gpu") -> int:
    """GPUs in a GRES/TRES request as ``squeue %b`` prints it (``gres:gpu:2``,
    ``gres/gpu:t4:2``, ``gres/gpu=2``; ``N/A``: none)."""
    total = 0
    for item in text.split(","):
        m = re.search(rf"(?:^|[:/]){re.escape(gres)}(?::[^:=,]+)?[:=]({COUNT})$", item.strip())
        if m is not None:
            total += int(m.group(1))
    return total


def allocated_count(tres: str, gres: str = "gpu") -> int:
    """GPUs in a job's allocated TRES (``squeue -O tres-alloc``: ``cpu=1,...,gres/gpu=2``; a
    typed ``gres/gpu:t4=2`` counts only where the untyped total is missing)."""
    total, typed = None, 0
    for item in tres.split(","):
        key, _, value = item.strip().partition("=")
        if (count := read_count(value)) is None:
            continue
        if key == f"gres/{gres}":
            total = count
        elif key.startswith(f"gres/{gres}:"):
            typed += count
    return total if total is not None else typed


def parse_running(stdout: str, gres: str = "gpu") -> list[RunningRow]:
    """Rows of ``squeue --Format=SQUEUE_JOBS_FORMAT`` (jobs holding resources now). A job's
    GPUs per node are those it asked per node, or its allocated GPUs spread over its nodes
    (rounded up) when more: ``--gpus=N`` asks nothing per node. An end or host list that
    cannot be read is unknown (None; no hosts, so no GPUs counted), named in the row's
    ``unreadable``; a line with the wrong number of fields is a lost row (no hosts): one odd
    row does not hide the others' GPUs. A last line without its newline (squeue ends every
    line with one) was cut short inside its last field, ``EndTime`` (``...T16:37:44`` cut to
    ``...T16:37:4`` still reads, 40 s early): its end is unknown, its hosts and GPUs whole."""
    rows = []
    lines = list(data_lines(stdout))
    cut = cut_last(stdout, lines)
    for index, line in enumerate(lines):
        if (lost := _lost(line, 6)) is not None:
            rows.append(RunningRow(lost[0], "", (), 0, None, (lost[1],)))
            continue
        i, user, nodes, per_node, alloc, end = line.split("|")
        bad: list[str] = []
        if cut and index == len(lines) - 1:
            bad.append(f"EndTime {end.strip()!r}: {cut_why('squeue', stdout, 'EndTime', line)}")
            end = "Unknown"
        try:
            hosts = expand_hostlist(nodes.strip())
        except SlurmOutputError:
            hosts = ()
            bad.append(f"NodeList {nodes.strip()!r}")
        spread = -(-allocated_count(alloc, gres) // max(1, len(hosts)))
        per = max(gpu_count(per_node, gres), spread)
        rows.append(RunningRow(i.strip(), user.strip(), hosts, per, _time("EndTime", end, bad),
                               tuple(bad)))  # fmt: skip
    return rows


def expand_hostlist(text: str) -> tuple[str, ...]:
    """``n[1-3,5],gpu7`` -> ``n1 n2 n3 n5 gpu7`` (zero padding kept: ``n[01-02]``).

    Raises:
        SlurmOutputError: an unbalanced bracket, a bad range (one that runs down, too:
            ``n[2-1]``), or more than
            :data:`MAX_HOSTS` hosts (``n[1-99999999999]`` would take all memory).
    """
    if text.count("[") != text.count("]"):
        raise SlurmOutputError(f"unreadable host list {text!r}")
    names: list[str] = []
    for m in re.finditer(r"([^,\[]+)(?:\[([^\]]*)\])?([^,\[]*)", text):
        prefix, ranges, suffix = m.group(1), m.group(2), m.group(3)
        if ranges is None:
            names.append(prefix + suffix)
            continue
        for part in ranges.split(","):
            lo, _, hi = part.partition("-")
            first, last = read_count(lo), read_count(hi or lo)
            if first is None or last is None:
                raise SlurmOutputError(f"unreadable host list {text!r}")
            if last < first:  # Slurm prints ranges upward: n[2-1] would expand to no host
                raise SlurmOutputError(f"unreadable host list {text!r}: range {part!r} runs down")
            if len(names) + last - first >= MAX_HOSTS:
                raise SlurmOutputError(f"host list {text!r}: more than {MAX_HOSTS:,} hosts")
            width = len(lo)
            for n in range(first, last + 1):
                names.append(f"{prefix}{n:0{width}d}{suffix}")
    return tuple(n for n in names if n and n not in {"(null)", "None"})
