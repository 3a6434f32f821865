"""A job the caller submitted that the daemon has not read yet (it is down, or has not ingested
the line yet): its line is still past the ledger's ingestion offset in the caller's own queue
file. ``carbond cancel`` and ``status`` look for it when the ledger has no such id."""

from __future__ import annotations

from pathlib import Path

from daemon.ledger import Ledger, QueueFileRecord
from daemon.queue import has_job_line, submit_target
from daemon.queue.resume import resume
from daemon.statedir import LEDGER_NAME

__all__ = ["unread_job_file"]


def unread_job_file(state_dir: Path, job_id: str, uid: int) -> Path | None:
    """The queue file of ``uid`` (where ``carbond submit`` appends for them) if it holds a job
    line with ``job_id`` that the daemon has not read yet, else None.

    Raises:
        QueueError: the state dir or the file cannot be read.
        LedgerError: the ledger cannot be read.
    """
    target = submit_target(state_dir, uid)
    record: QueueFileRecord | None = None
    ledger_path = state_dir / LEDGER_NAME
    if ledger_path.is_file():  # no ledger: no daemon has started, nothing was read
        with Ledger.open_readonly(ledger_path) as ledger:
            record = ledger.queue_files().get(str(target.relative_to(state_dir)))
    # from where the daemon goes on reading: also past a copy of the state dir (same bytes)
    found = has_job_line(target, job_id, lambda fd, st: resume(fd, st, record).offset)
    return target if found else None
