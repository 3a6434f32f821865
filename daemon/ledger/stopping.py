"""Runs still being stopped after their job ended: a lost GPU's job is recorded ``failed``
at once, but its processes may outlive the SIGTERM and hold on for the executor's grace
(SIGKILL). ``runs.stopping`` (migration 11) says why such a run is being stopped until its
executor reports it gone, so a restarted daemon goes on stopping it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from daemon.ledger.base import Connection
from daemon.ledger.records import RunRecord
from daemon.ledger.run_rows import run_record
from daemon.ledger.values import dt

__all__ = ["StoppingRun", "StoppingRuns"]


@dataclass(frozen=True, slots=True)
class StoppingRun:
    """A run being stopped: its record, why, and when a cancel was first sent to it (None:
    its executor never took one; the grace before SIGKILL counts from then)."""

    run: RunRecord
    reason: str
    cancel_sent_at: datetime | None


class StoppingRuns(Connection):
    """The runs being stopped (a mixin of :class:`daemon.ledger.Ledger`)."""

    def set_stopping(self, job_id: str, reason: str | None) -> None:
        """Record that ``job_id``'s run is being stopped for ``reason`` (None: it is gone)."""
        self._exec("UPDATE runs SET stopping = ? WHERE job_id = ?", (reason, job_id))

    def stopping_runs(self, *, interrupted: bool = False) -> list[StoppingRun]:
        """The runs being stopped whose jobs have ended; ``interrupted``: instead those whose
        job is still ``running`` (the daemon died between the stop and the end that goes with
        it, :func:`daemon.service.succession.end_interrupted_stops`)."""
        running = "=" if interrupted else "!="
        rows = self._exec(
            "SELECT runs.*, jobs.deadline AS deadline, jobs.uid AS uid"
            " FROM runs JOIN jobs USING (job_id)"
            f" WHERE runs.stopping IS NOT NULL AND jobs.state {running} 'running'"
            " ORDER BY runs.launched_at"
        )
        return [
            StoppingRun(
                run_record(row, dt(row["deadline"]), row["uid"]),
                row["stopping"],
                dt(row["cancel_sent_at"]),
            )
            for row in rows
        ]
