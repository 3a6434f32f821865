"""``sacct``'s answer as frozen values (pure; tested against outputs recorded from Slurm 22.05).

``sacct --parsable2`` prints ``|`` between fields, one row per job and per step
(``<id>.batch``, ``<id>.extern``, ``<id>.0``); ``State`` may read ``CANCELLED by <uid>``;
``ExitCode`` is ``<code>:<signal>``; ``ConsumedEnergyRaw`` is joules (empty or 0 without
energy accounting); ``AllocTRES`` what Slurm allocated the run (``billing=1,cpu=1,gres/gpu=2,
mem=100M,node=1``: its GPUs, where ``AccountingStorageTRES`` has ``gres/gpu``; empty for a
job that never ran); times are printed under ``TZ=UTC``.

One answer covers every job of a poll, so what cannot be read is kept to its row: a field
(``ExitCode``, ``Start``, ``End``, ``ConsumedEnergyRaw``) is unknown (None) and named in the
row's ``unreadable``; a line with the wrong number of fields (output cut short) is a *lost*
row of the job its first field names, its state unknown, so that job's end waits for a later
answer while every other job's is read.

Read with ``--duplicates`` (every poll is), a job Slurm requeued after it started (an admin's
``scontrol requeue``, a node failure) prints a job row and its steps for each of its runs,
oldest first (its earlier runs' job rows say ``REQUEUED``): each row carries the run it belongs
to (:attr:`AcctRow.run`, 0 the latest), and a job's rows (:func:`row_of`, :func:`rows_of`,
:func:`energy_j`) are those of its latest run unless another is asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

from daemon.executors.slurm.commands import SACCT_FIELDS
from daemon.executors.slurm.counts import COUNT, read_count
from daemon.executors.slurm.listing import LOST, cut_last, cut_why, data_lines
from daemon.executors.slurm.parse import NO_VAL64, parse_time

__all__ = ["FIELDS", "LOST", "AcctRow", "energy_j", "parse_sacct", "row_of", "rows_of"]

FIELDS = len(SACCT_FIELDS)  # JobID|State|...|ConsumedEnergyRaw|AllocTRES
_EXIT = re.compile(rf"^({COUNT}):({COUNT})$")
_GPUS = re.compile(rf"(?:^|,)gres/gpu=({COUNT})(?=,|$)")  # untyped: every type's together
_TYPED_GPUS = re.compile(rf"(?:^|,)gres/gpu:[^=,]+=({COUNT})(?=,|$)")  # gres/gpu:t4=2


@dataclass(frozen=True, slots=True)
class AcctRow:
    """One ``sacct`` row: a job (``step`` empty) or one of its steps (``batch``, ``0``, ...)."""

    slurm_id: str
    step: str
    state: str
    by_uid: int | None
    exit_code: int | None
    signal: int | None
    start: datetime | None
    end: datetime | None
    nodes: str
    partition: str
    energy_j: float | None
    unreadable: tuple[str, ...] = ()  # "ExitCode '0:x'": fields read as unknown (None)
    run: int = 0  # 0: the job's latest run; 1: the one before it Slurm requeued, ...
    gpus: int | None = None  # AllocTRES's gres/gpu (None: not printed, as for a job never run)

    @property
    def lost(self) -> bool:
        """The line had the wrong number of fields: nothing of it but its id is known."""
        return any(u.startswith(LOST) for u in self.unreadable)

    @property
    def start_unknown(self) -> bool:
        """sacct printed a ``Start`` that cannot be read: the job may have started."""
        return self.lost or any(u.startswith("Start ") for u in self.unreadable)


def parse_sacct(stdout: str) -> list[AcctRow]:
    """Rows of ``sacct --parsable2 --format=SACCT_FIELDS`` (jobs and steps). A field that
    cannot be read is None, named in the row's ``unreadable``; a line with the wrong number
    of fields is a :attr:`~AcctRow.lost` row of the job its first field names (state empty):
    one odd row does not hide the other jobs' ends. So is a last line without its newline
    (sacct ends every line with one): the answer was cut short inside it, maybe inside its
    last field (``AllocTRES``: ``gres/gpu=12`` cut to ``gres/gpu=1``), whose field count
    alone cannot tell."""
    rows = []
    lines = list(data_lines(stdout))
    cut = cut_last(stdout, lines)
    for index, line in enumerate(lines):
        parts = line.split("|")
        unterminated = cut and index == len(lines) - 1
        if len(parts) != FIELDS or unterminated:
            slurm_id, _, step = parts[0].strip().partition(".")
            why = f"{LOST} of {len(parts)} '|'-separated fields, not {FIELDS}: {line[:200]!r}"
            if len(parts) == FIELDS:  # whole but for its newline: its last field may be cut
                why = cut_why("sacct", stdout, SACCT_FIELDS[-1], line)
            rows.append(AcctRow(slurm_id, step, "", None, None, None, None, None, "", "", None,
                                (why,)))  # fmt: skip
            continue
        job, state, exit_code, start, end, nodes, partition, energy, tres = parts
        slurm_id, _, step = job.partition(".")
        state_word, _, by = state.partition(" by ")
        code, sig, bad = None, None, []
        if (m := _EXIT.match(exit_code.strip())) is not None:
            code, sig = int(m.group(1)), int(m.group(2))
        elif exit_code.strip():
            bad.append(f"ExitCode {exit_code.strip()!r}")
        times = []
        for name, text in (("Start", start), ("End", end)):
            try:
                times.append(parse_time(text))
            except ValueError:
                times.append(None)
                bad.append(f"{name} {text.strip()!r}")
        try:
            joules = float(energy) if energy.strip() else None
        except ValueError:
            joules = None
            bad.append(f"ConsumedEnergyRaw {energy.strip()!r}")
        rows.append(
            AcctRow(
                slurm_id=slurm_id,
                step=step,
                state=state_word.strip(),
                by_uid=read_count(by.strip()),
                exit_code=code if sig == 0 else None,
                signal=sig or None,
                start=times[0],
                end=times[1],
                nodes=nodes.strip(),
                partition=partition.strip(),
                energy_j=joules if joules is not None and 0 < joules < NO_VAL64 else None,
                unreadable=tuple(bad),
                gpus=_gpus(tres.strip()),
            )
        )
    return _numbered(rows)


def _gpus(tres: str) -> int | None:
    """The GPUs an ``AllocTRES`` names: its ``gres/gpu=N``, else the sum of its typed
    ``gres/gpu:TYPE=N`` (accounting that tracks only types); None when it names none."""
    if (untyped := _GPUS.search(tres)) is not None:
        return int(untyped.group(1))
    typed = [int(n) for n in _TYPED_GPUS.findall(tres)]
    return sum(typed) if typed else None


def _numbered(rows: list[AcctRow]) -> list[AcctRow]:
    """``rows`` with their :attr:`~AcctRow.run`: each readable job row of an id starts a run
    of it (``--duplicates`` prints each run's job row, then its steps, oldest run first); its
    steps, and a lost row (a fragment: its id may not even be its own), belong to the run
    before them (the first, when none is); the last run is 0."""
    runs: dict[str, int] = {}  # readable job rows of each id so far
    index = []
    for row in rows:
        if not row.step and not row.lost:
            runs[row.slurm_id] = runs.get(row.slurm_id, 0) + 1
        index.append(max(runs.get(row.slurm_id, 0) - 1, 0))
    return [row if runs.get(row.slurm_id, 0) <= 1
            else replace(row, run=runs[row.slurm_id] - 1 - at)
            for row, at in zip(rows, index, strict=True)]  # fmt: skip


def row_of(rows: list[AcctRow], slurm_id: str, step: str = "", run: int = 0) -> AcctRow | None:
    """Job ``slurm_id``'s row (``step`` empty) or its step's, of its latest run (or ``run``):
    a readable one wins over a
    :attr:`~AcctRow.lost` one of the same id printed before it (a line cut in two leaves a
    fragment whose first field may read as any id), as squeue's ``by_id`` does; None when
    sacct printed none."""
    mine = [r for r in rows if r.slurm_id == slurm_id and r.step == step and r.run == run]
    return next((r for r in mine if not r.lost), mine[0] if mine else None)


def rows_of(rows: list[AcctRow], slurm_id: str, run: int = 0) -> list[AcctRow]:
    """Job ``slurm_id``'s rows (its own and its steps') of its latest run (or ``run``), less
    a lost fragment of an id and step that also has a readable row (:func:`row_of`): that
    fragment is not what is read."""
    return [
        r
        for r in rows
        if r.slurm_id == slurm_id
        and r.run == run
        and (not r.lost or row_of(rows, slurm_id, r.step, run) is r)
    ]


def energy_j(rows: list[AcctRow], slurm_id: str, run: int = 0) -> float | None:
    """The energy Slurm accounted to job ``slurm_id``'s latest run (or ``run``), in joules,
    or None when it has none
    (energy accounting not configured: every row empty or 0; or the value it would be read
    from unreadable, or a row of the job lost).

    Its ``batch`` step's when that one has a value: carbond's jobs run on one node, and the
    batch step spans the whole script there. Not the job's own row first: once the script
    runs ``srun`` steps, Slurm fills that row with the sum of those steps alone (measured on
    the local cluster: 1,185 J for two 4 s steps in a 10 s script whose batch step drew
    1,524 J), which leaves out the script's time outside them, and counts a node twice while
    two steps run at once. Else the job's own row, else the largest of its steps (other
    steps run inside the batch one on the same node: adding them would count twice).
    """
    mine = rows_of(rows, slurm_id, run)
    batch = [row.energy_j for row in mine if row.step == "batch" and not row.lost]
    if batch and batch[0] is not None:
        return batch[0]
    if any(row.lost or any(u.startswith("ConsumedEnergyRaw") for u in row.unreadable)
           for row in mine):  # fmt: skip
        return None  # the batch step's may be the one unread: unknown, not an undercount
    own = [row.energy_j for row in mine if not row.step and row.energy_j is not None]
    if own:
        return own[0]
    steps = [row.energy_j for row in mine if row.step and row.energy_j is not None]
    return max(steps) if steps else None
