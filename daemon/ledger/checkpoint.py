"""The recalibration checkpoint's rows (schema version 7; since version 10 with the
observations each factor not yet in use keeps for its median, ``early_json``; since version 12
one row per (model, GPU type, runtime, precision) and per (model, GPU type), the latter with an
empty runtime and precision): the factors a restart would fold from the measured outcome rows
up to a :class:`~daemon.ledger.measured.Watermark`, and what the ledger held then
(:class:`LedgerMarks`), so a later start can tell, with a few counts on indexes, whether the rows
up to the watermark are still the ones folded (:meth:`Checkpoints.changed_since`). What to
fold and when is :mod:`daemon.learning.checkpoint`'s.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from daemon.ledger.base import Connection
from daemon.ledger.errors import LedgerError
from daemon.ledger.measured import MEASURED, Watermark, measured, position_sql
from daemon.ledger.values import ts
from policies.footprint.recalibration import Points, RecalibrationFactor

__all__ = ["Checkpoints", "LedgerMarks", "StoredCheckpoint", "UnreadableCheckpointError"]


class UnreadableCheckpointError(LedgerError):
    """The stored checkpoint's values are not what carbond writes (a hand edit, a restore
    from elsewhere): derived state, which a fold from scratch replaces."""


@dataclass(frozen=True, slots=True)
class LedgerMarks:
    """What the ledger held when a checkpoint was written, to tell later whether the rows up to
    its watermark changed: the measured outcome rows (any job state) up to the watermark and
    the sum of their rowids, the jobs in state ``succeeded``, and the last transition and
    decision (``seq``)."""

    measured_rows: int
    measured_rowid_sum: int
    succeeded_jobs: int
    transitions_seq: int
    decisions_seq: int


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A checkpoint as stored: the fold's inputs (``fingerprint``, JSON text), how far it
    folded (``watermark``; ``runs_folded`` runs taught the factors), the ledger's marks then,
    and the folded state per (model, GPU type, runtime, precision) and per (model, GPU type)."""

    fingerprint: str
    watermark: Watermark
    marks: LedgerMarks
    runs_folded: int
    factors: tuple[RecalibrationFactor, ...]


class Checkpoints(Connection):
    """The recalibration checkpoint (a mixin of :class:`daemon.ledger.Ledger`)."""

    def recalibration_checkpoint(self, *, factors: bool = True) -> StoredCheckpoint | None:
        """The stored checkpoint (None: none written); without its factors when ``factors``
        is False (to compare its fingerprint and watermark only).

        Raises:
            UnreadableCheckpointError: a value is not of its column's kind, or a factor's is
                not finite.
        """
        row = self._exec(
            "SELECT fingerprint, folded_recorded_at, folded_rowid, measured_rows,"
            " measured_rowid_sum, succeeded_jobs, transitions_seq, decisions_seq, runs_folded"
            " FROM recalibration_checkpoint WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        rows = self._exec(
            "SELECT model, gpu, runtime, precision, samples, energy_log, duration_log,"
            " measured_s, early_json FROM recalibration_checkpoint_factors"
            " ORDER BY model, gpu, runtime, precision"
        ).fetchall() if factors else []  # fmt: skip
        try:
            folded = tuple(
                RecalibrationFactor(
                    str(m), str(g), _integer(n), _finite(e), _finite(d), _finite(s), *_early(early),
                    runtime=str(r), precision=str(p),
                )
                for m, g, r, p, n, e, d, s, early in rows
            )  # fmt: skip
            marks = LedgerMarks(*(_integer(v) for v in tuple(row)[3:8]))
            return StoredCheckpoint(str(row[0]), Watermark(str(row[1]), _integer(row[2])),
                                    marks, _integer(row[8]), folded)  # fmt: skip
        except (TypeError, ValueError) as e:
            raise UnreadableCheckpointError(
                f"{self.path}: unreadable recalibration checkpoint: {e}"
            ) from e

    def ledger_marks(
        self, watermark: Watermark, since: StoredCheckpoint | None = None
    ) -> LedgerMarks:
        """The ledger's marks now for a checkpoint folded up to ``watermark``: counts on the
        ``outcomes_measured`` and ``jobs_state`` indexes, no row read. ``since``: a checkpoint
        :meth:`changed_since` just found unchanged in this transaction, whose marks are then
        moved on by the rows after it alone."""
        after, after_params = position_sql(">", since.watermark if since else Watermark("", -1))
        through, through_params = position_sql("<=", watermark)
        rows, rowid_sum = self._exec(
            f"SELECT count(*), coalesce(sum(rowid), 0) FROM outcomes WHERE {MEASURED}"
            f"{after}{through}",
            (*after_params, *through_params),
        ).fetchone()
        transitions, decisions = self.last_seqs()
        if since is None:
            (succeeded,) = self._exec(
                "SELECT count(*) FROM jobs WHERE state = 'succeeded'"
            ).fetchone()
        else:
            rows, rowid_sum = (
                rows + since.marks.measured_rows,
                rowid_sum + since.marks.measured_rowid_sum,
            )
            succeeded = since.marks.succeeded_jobs + self._succeeded_since(since.marks)
        return LedgerMarks(int(rows), int(rowid_sum), int(succeeded), int(transitions),
                           int(decisions))  # fmt: skip

    def last_seqs(self) -> tuple[int, int]:
        """The last transition's and the last decision's ``seq`` (0: none)."""
        (transitions,) = self._exec("SELECT coalesce(max(seq), 0) FROM transitions").fetchone()
        (decisions,) = self._exec("SELECT coalesce(max(seq), 0) FROM decisions").fetchone()
        return int(transitions), int(decisions)

    def _succeeded_since(self, marks: LedgerMarks) -> int:
        """The moves to ``succeeded`` since ``marks`` were taken (on the transitions since)."""
        (moves,) = self._exec(
            "SELECT count(*) FROM transitions WHERE seq > ? AND to_state = 'succeeded'",
            (marks.transitions_seq,),
        ).fetchone()
        return int(moves)

    def changed_since(self, stored: StoredCheckpoint) -> str | None:
        """Why the measured runs up to ``stored``'s watermark may no longer be the ones it
        folded (None: they are): a measured outcome row up to it added, removed or replaced
        (their count or rowids differ: a replaced row gets a new rowid), a job moved into or
        out of ``succeeded`` other than by the transitions since, a transition or a decision
        since of a job whose outcome is up to it. Counts on indexes and the rows since."""
        mark, then = stored.watermark, stored.marks
        now = self.ledger_marks(mark)
        if (now.measured_rows, now.measured_rowid_sum) != (
            then.measured_rows,
            then.measured_rowid_sum,
        ):
            return (
                f"measured outcome rows up to the checkpoint changed ({then.measured_rows} "
                f"folded, {now.measured_rows} now)"
            )
        succeeded_since = self._succeeded_since(then)
        if now.succeeded_jobs != then.succeeded_jobs + succeeded_since:
            return (
                f"succeeded jobs changed other than by transitions ({then.succeeded_jobs} + "
                f"{succeeded_since} expected, {now.succeeded_jobs} now)"
            )
        through, through_params = position_sql("<=", mark, "o")
        for table, seq in (("transitions", then.transitions_seq),
                           ("decisions", then.decisions_seq)):  # fmt: skip
            (touched,) = self._exec(
                f"SELECT count(*) FROM {table} t CROSS JOIN outcomes o ON o.job_id = t.job_id"
                f" WHERE t.seq > ? AND {measured('o')}{through}",
                (seq, *through_params),
            ).fetchone()
            if touched:
                return f"{touched} new {table} of jobs whose runs the checkpoint folded"
        return None

    def measured_rows_after(self, watermark: Watermark | None) -> int:
        """How many measured outcome rows (any job state) sort after ``watermark`` (all of
        them when None): on the ``outcomes_measured`` index."""
        after, params = position_sql(">", watermark)
        (rows,) = self._exec(
            f"SELECT count(*) FROM outcomes WHERE {MEASURED}{after}", params
        ).fetchone()
        return int(rows)

    def write_recalibration_checkpoint(
        self,
        fingerprint: str,
        watermark: Watermark,
        runs_folded: int,
        factors: Sequence[RecalibrationFactor],
        now: datetime,
        since: StoredCheckpoint | None = None,
    ) -> LedgerMarks:
        """Replace the checkpoint (inside the caller's transaction, which also read the runs
        folded): ``factors`` folded from the measured runs up to ``watermark`` under
        ``fingerprint``, resumed from ``since`` (None: from scratch); the ledger's marks are
        taken now (:meth:`ledger_marks`). Returns them."""
        marks = self.ledger_marks(watermark, since)
        self.drop_recalibration_checkpoint()
        self._exec(
            "INSERT INTO recalibration_checkpoint VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (fingerprint, watermark.recorded_at, watermark.rowid, marks.measured_rows,
             marks.measured_rowid_sum, marks.succeeded_jobs, marks.transitions_seq,
             marks.decisions_seq, runs_folded, ts(now)),
        )  # fmt: skip
        self._exec_many(
            "INSERT INTO recalibration_checkpoint_factors (model, gpu, runtime, precision,"
            " samples, energy_log, duration_log, measured_s, early_json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(f.model, f.gpu, f.runtime, f.precision, f.samples, f.energy_log, f.duration_log,
              f.measured_s, _early_json(f)) for f in factors],
        )  # fmt: skip
        return marks

    def drop_recalibration_checkpoint(self) -> None:
        """Forget the checkpoint (inside the caller's transaction)."""
        self._exec("DELETE FROM recalibration_checkpoint")
        self._exec("DELETE FROM recalibration_checkpoint_factors")


def _early_json(factor: RecalibrationFactor) -> str | None:
    """The ``early_json`` column of ``factor`` (None: it keeps no observations)."""
    if not factor.early_energy and not factor.early_duration:
        return None
    return json.dumps({"energy": factor.early_energy, "duration": factor.early_duration})


def _early(value: object) -> tuple[Points, Points]:
    """The kept observations (energy, duration) an ``early_json`` column holds.

    Raises:
        ValueError: not as :func:`_early_json` writes it, or a value not finite, or a weight
            not > 0.
    """
    if value is None:
        return (), ()
    if not isinstance(value, str):
        raise ValueError(f"early_json is not text: {value!r}")
    data = json.loads(value)
    if not isinstance(data, dict):
        raise ValueError(f"early_json is not an object: {value!r}")
    kept = []
    for name in ("energy", "duration"):
        points = []
        for point in data.get(name) or ():
            log, weight = (_finite(v) for v in point)
            if weight <= 0:
                raise ValueError(f"early_json: a weight <= 0: {weight!r}")
            points.append((log, weight))
        kept.append(tuple(sorted(points)))
    return kept[0], kept[1]


def _integer(value: object) -> int:
    """An INTEGER column's value (SQLite keeps whatever was written in an untyped column)."""
    if not isinstance(value, int):
        raise ValueError(f"{value!r} is not an integer")
    return value


def _finite(value: object) -> float:
    """A REAL column's value, finite."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return float(value)
