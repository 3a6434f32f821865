"""The recalibration checkpoint: the factors a restart would fold from the ledger's measured
runs up to a watermark, stored in the ledger (schema version 7; per runtime and precision since
version 12), so a restart folds only the runs recorded since instead of every run the ledger
ever measured.

A restart's factors must equal a fold of every measured run from scratch
(:meth:`Learning.relearn <daemon.learning.factors.Learning.relearn>` of
:func:`~daemon.learning.factors.measured_history`). So the checkpoint is always computed from the
ledger's rows in the order a restart reads them (never from the live fold, whose order is the
order runs ended), and it is used only while that holds:

- its **fingerprint** (:class:`FoldInputs`) equals the present one: the recalibration config,
  the GPU types of the inventory with their catalog specs (runs on other types are skipped; each
  run is estimated on its type's spec) and whether each has real or simulated GPUs (the
  simulated executor's runs teach only a type whose GPUs are all simulated), the carbond
  version and a digest of the sources the fold runs (the pure estimator and the model catalog
  in ``policies/``, request parsing, the history reader): an upgrade or a config change
  relearns from scratch once;
- the rows up to its watermark are the ones folded (:meth:`Ledger.changed_since
  <daemon.ledger.checkpoint.Checkpoints.changed_since>`: counts on indexes, never a read of
  every row): no measured outcome row added before the watermark (a clock stepped back), none
  removed or replaced (``INSERT OR REPLACE`` gives a new rowid), no job moved in or out of
  ``succeeded`` but by its transitions, no transition or decision since of a folded job.

Otherwise (``recalibration_checkpoint_discarded``, with the reason) the fold starts from
scratch, as before. The fold, the reads and the new checkpoint are one transaction (kill point
``recalibration_checkpoint`` before its commit): a crash anywhere leaves the previous
checkpoint, which is still a true fold of its rows, and only makes the next tail longer.

When: at start (:func:`restore`, before ``READY=1``), and while the daemon runs, once
:data:`CHECKPOINT_EVERY_RUNS` measured runs are past the watermark (:func:`advance`, from the
service's reconcile; at most that many measured outcome rows folded per round, so a config change
is folded again over several rounds). A failed write is logged (``recalibration_checkpoint_failed``)
and changes nothing learned.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

import policies
from daemon import killpoints
from daemon.inventory import InventoryGpu
from daemon.learning.factors import Learning, measured_history
from daemon.ledger import Ledger, LedgerError, MeasuredRun
from daemon.ledger.checkpoint import StoredCheckpoint, UnreadableCheckpointError
from daemon.ledger.measured import Watermark
from daemon.package_version import carbond_version
from policies.footprint.recalibration import Recalibration, RecalibrationConfig

__all__ = [
    "CHECKPOINT_EVERY_RUNS", "FoldInputs", "Folded", "advance", "checkpoint_due", "peek", "restore",
]  # fmt: skip

log = structlog.get_logger(__name__)

CHECKPOINT_EVERY_RUNS = 10_000
"""While the daemon runs: the measured runs past the checkpoint that make it due, and the most
folded in one round (~0.15-0.5 s of CPU on the dev VM, bench/RESULTS.md)."""

# The daemon's sources the fold runs besides ``policies/`` (all of it: estimator, catalogs,
# recalibration): request parsing, the planner's view of a job, the history reader, this module.
_DAEMON_DIR = Path(__file__).resolve().parents[1]
_DAEMON_SOURCES = ("learning/factors.py", "learning/checkpoint.py", "planning.py",
                   "ledger/measured.py", "queue/line.py", "queue/job_request.py")  # fmt: skip


@dataclass(frozen=True, slots=True)
class FoldInputs:
    """Everything a fold of the ledger's measured runs depends on besides the rows: the
    checkpoint's fingerprint. ``config``: the :class:`RecalibrationConfig` fields; ``gpus``:
    the inventory's GPU types with a digest of each one's catalog spec; ``code``: a digest of
    the sources the fold runs (:func:`code_digest`); ``version``: carbond's; ``kinds``: each
    GPU type's ``real``, ``simulated`` (on the simulated executor) or ``real+simulated`` GPUs
    (which runs it learns from, :func:`~daemon.learning.factors.measured_history`)."""

    config: tuple[tuple[str, float], ...]
    gpus: tuple[tuple[str, str], ...]
    code: str
    version: str
    kinds: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(
        cls,
        config: RecalibrationConfig,
        inventory: Sequence[InventoryGpu],
        *,
        code: str | None = None,
        version: str | None = None,
    ) -> FoldInputs:
        """The present inputs (``code`` and ``version``: this install's unless given)."""
        by_type = {gpu.device.gpu.name: gpu.device.gpu for gpu in inventory}  # as the fold
        gpus = tuple(sorted((name, _digest(repr(spec))) for name, spec in by_type.items()))
        kinds: dict[str, set[str]] = {}
        for gpu in inventory:
            kind = "simulated" if gpu.executor == "simulated" else "real"
            kinds.setdefault(gpu.device.gpu.name, set()).add(kind)
        kind_of = tuple(sorted((name, "+".join(sorted(k))) for name, k in kinds.items()))
        return cls(tuple(sorted(asdict(config).items())), gpus, code or code_digest(),
                   version or carbond_version(), kind_of)  # fmt: skip

    def text(self) -> str:
        """As stored (JSON)."""
        return json.dumps({"config": self.config, "gpus": self.gpus, "code": self.code,
                           "version": self.version, "kinds": self.kinds},
                          sort_keys=True)  # fmt: skip

    def differs(self, stored: str) -> str | None:
        """Which input differs from the ``stored`` fingerprint (None: none)."""
        try:
            then: dict[str, Any] = json.loads(stored)
        except ValueError:
            return "unreadable fingerprint"
        now = json.loads(self.text())
        types = [sorted(name for name, _ in fingerprint.get("gpus") or ())
                 for fingerprint in (then, now)]  # fmt: skip
        checks = (
            (then.get("version") != now["version"],
             f"carbond version changed ({then.get('version')} -> {now['version']})"),
            (then.get("code") != now["code"], "estimator or catalog sources changed"),
            (then.get("config") != now["config"], "recalibration settings changed"),
            (types[0] != types[1], "inventory GPU types changed"),
            (then.get("gpus") != now["gpus"], "GPU catalog changed"),
            (then.get("kinds") != now["kinds"],
             "inventory GPU types changed between real and simulated GPUs"),
        )  # fmt: skip
        return next((reason for changed, reason in checks if changed), None)


@dataclass(frozen=True, slots=True)
class Folded:
    """What a fold from the ledger gave: the factors, the runs they were taught by in all
    (``runs``: a run whose measurement the recalibration rejects taught nothing and is not
    counted) and of those the runs folded now (``tail_runs``, from ``tail_rows`` rows read),
    whether it resumed from a checkpoint, why a stored one was not used (``discarded``), and
    whether a checkpoint was written."""

    recalibration: Recalibration
    runs: int
    tail_runs: int
    tail_rows: int
    from_checkpoint: bool
    discarded: str | None
    written: bool


def restore(
    ledger: Ledger,
    inventory: Sequence[InventoryGpu],
    config: RecalibrationConfig,
    now: datetime,
    *,
    inputs: FoldInputs | None = None,
) -> Folded:
    """The factors a fold of every measured run in ``ledger`` gives (at start, before
    ``READY=1``): the checkpoint's plus the runs since, or all of them when it cannot be used;
    then the checkpoint moved to the last run read. Logs ``recalibration_checkpoint_loaded``
    (runs from the checkpoint and from the tail) or ``recalibration_relearned`` (a fold from
    scratch) and ``recalibration_checkpoint_discarded`` (the reason) when one was not used."""
    try:
        folded = advance(ledger, inventory, config, now, inputs=inputs)
    except LedgerError as e:  # e.g. a full disk: learn all the same, as without a checkpoint
        log.warning("recalibration_checkpoint_failed", error=str(e))
        learning = Learning(Recalibration(config))
        runs = learning.relearn(measured_history(ledger, inventory))
        return Folded(learning.recalibration, runs, runs, runs, False, None, False)
    if folded.from_checkpoint:
        log.info("recalibration_checkpoint_loaded", runs=folded.runs,
                 checkpoint_runs=folded.runs - folded.tail_runs, tail_runs=folded.tail_runs,
                 tail_rows=folded.tail_rows, pairs=folded.recalibration.pairs,
                 keys=len(folded.recalibration.factors))  # fmt: skip
    elif folded.runs:
        log.info("recalibration_relearned", runs=folded.runs,
                 pairs=folded.recalibration.pairs,
                 keys=len(folded.recalibration.factors))  # fmt: skip
    return folded


def advance(
    ledger: Ledger,
    inventory: Sequence[InventoryGpu],
    config: RecalibrationConfig,
    now: datetime,
    *,
    limit: int | None = None,
    inputs: FoldInputs | None = None,
) -> Folded:
    """Fold the measured runs past the checkpoint (those of the next ``limit`` measured outcome
    rows, whatever their job's state; all when None) onto it, or from scratch when it cannot be
    used, and store the result as the new checkpoint, all in one transaction. ``inputs``: the
    fold's (default :meth:`FoldInputs.of` ``config`` and ``inventory``). Nothing is written
    when the ledger has no measured run yet."""
    inputs = inputs or FoldInputs.of(config, inventory)
    with ledger.transaction():
        tail = _fold(ledger, inventory, config, inputs, limit)
        stored, resumed, learning, end = tail.stored, tail.resumed, tail.learning, tail.end
        total = tail.runs + (resumed.runs_folded if resumed else 0)
        mark = end or tail.after
        written = False
        if mark is None:  # no measured run in the ledger: nothing to keep
            if stored is not None or tail.discarded is not None:
                ledger.drop_recalibration_checkpoint()
        elif end is not None or resumed is None or _moved_on(ledger, resumed):
            factors = tuple(learning.recalibration.factors.values())
            ledger.write_recalibration_checkpoint(inputs.text(), mark, total, factors, now,
                                                  resumed)  # fmt: skip
            killpoints.reached("recalibration_checkpoint")
            written = True
    if tail.discarded is not None:
        log.info("recalibration_checkpoint_discarded", reason=tail.discarded)
    if written:
        log.debug("recalibration_checkpoint_written", runs=total, tail_runs=tail.runs,
                  tail_rows=tail.rows)  # fmt: skip
    return Folded(learning.recalibration, total, tail.runs, tail.rows, resumed is not None,
                  tail.discarded, written)  # fmt: skip


def peek(
    ledger: Ledger,
    inventory: Sequence[InventoryGpu],
    config: RecalibrationConfig,
    *,
    inputs: FoldInputs | None = None,
) -> Folded:
    """The factors :func:`restore` would give now, read-only (``carbond gpus --learned``, on a
    ledger opened read-only while the daemon runs or after it stopped): the checkpoint's plus
    the measured runs since when it can be used, else a fold of every run, read in one
    snapshot. Writes nothing (``written`` is False) and logs no ``recalibration_*`` line but
    the history reader's ``recalibration_history_skipped``."""
    inputs = inputs or FoldInputs.of(config, inventory)
    with ledger.snapshot():
        tail = _fold(ledger, inventory, config, inputs, None)
    resumed = tail.resumed
    total = tail.runs + (resumed.runs_folded if resumed else 0)
    return Folded(tail.learning.recalibration, total, tail.runs, tail.rows, resumed is not None,
                  tail.discarded, False)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Tail:
    """One fold of the runs past the stored checkpoint (from scratch when it is unusable:
    ``discarded`` says why): the stored and the resumed checkpoint, the factors, the watermark
    resumed from and the last row folded, and the runs of the rows read that taught the factors
    (:meth:`Learning.taught <daemon.learning.factors.Learning.taught>`)."""

    stored: StoredCheckpoint | None
    resumed: StoredCheckpoint | None
    discarded: str | None
    learning: Learning
    after: Watermark | None
    end: Watermark | None
    runs: int
    rows: int


def _fold(
    ledger: Ledger,
    inventory: Sequence[InventoryGpu],
    config: RecalibrationConfig,
    inputs: FoldInputs,
    limit: int | None,
) -> _Tail:
    """Fold the runs of the next ``limit`` measured outcome rows (all when None) past the
    stored checkpoint onto it, or from scratch when it cannot be used (the caller holds a
    transaction or a snapshot)."""
    discarded = None
    try:
        stored = ledger.recalibration_checkpoint()
    except UnreadableCheckpointError as e:  # replaced by a fold from scratch
        stored, discarded = None, str(e)
    if stored is not None:
        discarded = (inputs.differs(stored.fingerprint) or _out_of_range(stored, config)
                     or ledger.changed_since(stored))  # fmt: skip
    resumed = stored if stored is not None and discarded is None else None
    start = Recalibration.from_factors(resumed.factors, config) if resumed else None
    learning = Learning(start or Recalibration(config))
    after = resumed.watermark if resumed else None
    end = ledger.measured_position(after, limit)  # the last row folded now (any state)
    runs = _Counted(ledger.measured_runs(after, end) if end is not None else iter(()))
    tail_runs = sum(1 for job, device, e, t in measured_history(ledger, inventory, runs)
                    if learning.taught(job, device, e, t))  # fmt: skip
    return _Tail(stored, resumed, discarded, learning, after, end, tail_runs, runs.read)


def checkpoint_due(ledger: Ledger, inputs: FoldInputs, every: int = CHECKPOINT_EVERY_RUNS) -> bool:
    """Whether :func:`advance` should run now: ``every`` measured runs or more past the stored
    checkpoint (or in all, with none), or one whose inputs are no longer the present ones while
    the ledger has measured runs, or ``10 * every`` transitions since it (jobs nothing measured:
    a restart's checks read the transitions since). One read of the checkpoint's row, the last
    ``seq`` and a count on an index."""
    try:
        stored = ledger.recalibration_checkpoint(factors=False)
    except UnreadableCheckpointError:
        return ledger.measured_rows_after(None) > 0
    if stored is not None and inputs.differs(stored.fingerprint) is not None:
        return ledger.measured_rows_after(None) > 0
    if stored is not None and ledger.last_seqs()[0] - stored.marks.transitions_seq >= 10 * every:
        return True
    return ledger.measured_rows_after(stored.watermark if stored else None) >= every


def _out_of_range(stored: StoredCheckpoint, config: RecalibrationConfig) -> str | None:
    """Why ``stored``'s factors cannot be a fold under ``config`` (None: they can): a fold
    counts its runs and clips every log factor, and every observation it keeps, to
    ``max_ratio``."""
    bound = math.log(config.max_ratio) * (1 + 1e-9)
    for f in stored.factors:
        early = [log for log, _ in (*f.early_energy, *f.early_duration)]
        logs = max(abs(f.energy_log), abs(f.duration_log), *(abs(log) for log in early))
        if f.samples < 1 or f.measured_s < 0 or logs > bound:
            key = ", ".join(name for name in (f.model, f.gpu, f.runtime, f.precision) if name)
            return f"recalibration checkpoint: factors of ({key}) out of range"
    return None


def _moved_on(ledger: Ledger, stored: StoredCheckpoint) -> bool:
    """Whether transitions or decisions were added since ``stored`` (its marks are then moved
    on, so the next start's checks read only the rows after them)."""
    return ledger.last_seqs() != (stored.marks.transitions_seq, stored.marks.decisions_seq)


class _Counted:
    """The runs of ``runs``, counting how many were read."""

    def __init__(self, runs: Iterator[MeasuredRun]) -> None:
        self._runs = runs
        self.read = 0

    def __iter__(self) -> Iterator[MeasuredRun]:
        for run in self._runs:
            self.read += 1
            yield run


@functools.cache
def code_digest() -> str:
    """A digest of the sources a fold runs: every file of the ``policies`` package and the
    daemon's modules that read and parse the history (computed once per process)."""
    digest = hashlib.sha256()
    files = sorted(Path(policies.__file__).parent.rglob("*.py"))
    files += [_DAEMON_DIR / name for name in _DAEMON_SOURCES]
    for path in files:
        digest.update(path.name.encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:  # an install without sources: the version tells
            digest.update(b"?")
    return digest.hexdigest()[:32]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
