"""Running jobs past their deadline.

A deadline is enforced before a job starts (a job still waiting at its deadline expires); a job
that is running when its deadline passes keeps running: stopping it would throw away the work
done and the energy already spent, and a late result is usually still wanted (``carbond cancel``
stops it). carbond says so instead, once per job and daemon: the ``deadline_missed`` warning,
the ``carbond_jobs_past_deadline`` gauge, and ``deadline_missed`` in ``carbond status`` and
``jobs``. The job's end counts in ``carbond_ledger_deadlines_missed`` as before. Pure: time is
passed in.

A restarted daemon reports once more the jobs still running past their deadline, on purpose:
the ledger does not say when the previous daemon last checked (it may have been down when the
deadline passed, and never reported it), so seeding the seen set from the ledger would silence
exactly those; one line per such job per start is the price, and the new log names them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from daemon.ledger import RunRecord

__all__ = ["Overdue"]


class Overdue:
    """The running jobs seen past their deadline, so each is reported once."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self.count = 0  # running jobs past their deadline at the last check

    def check(self, runs: Sequence[RunRecord], now: datetime) -> list[RunRecord]:
        """The runs among ``runs`` (the active ones) whose deadline passed since the last check
        (or before the first); jobs no longer among them are forgotten."""
        past = [run for run in runs if run.deadline is not None and run.deadline < now]
        new = [run for run in past if run.job_id not in self._seen]
        self._seen = {run.job_id for run in past}
        self.count = len(past)
        return new

    def take_over(self, previous: Overdue) -> None:
        """After a reload: the jobs ``previous`` already reported (not reported again)."""
        self._seen |= previous._seen
        self.count = previous.count
