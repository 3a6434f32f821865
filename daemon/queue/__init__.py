"""The queue: one line's validation (:mod:`.line`), appending under a lock (:mod:`.files`),
exactly-once ingestion (:mod:`.ingest`), safe compaction (:mod:`.compaction`).

This package's root re-exports only what needs no ledger (:mod:`.line` and the requests of
:mod:`.job_request`, :mod:`.files`), since the ledger stores
:class:`~daemon.queue.job_request.JobRequest`; the ingestion side is
``from daemon.queue.ingest import Queue``.

Layout in ``state_dir``::

    queue.jsonl          the main queue; raw lines are attributed to its owner
    queue.d/<uid>.jsonl  per-user spool files (``carbond submit`` by someone who does not own
                         queue.jsonl); lines attributed to each file's owner. Also
                         ``<uid>.<hex>.jsonl`` (submit's way around a name another user took);
                         a file named for a uid that does not own it is ignored
    queue.retired/       files renamed away by compaction, read until they are quiet
    rejected.jsonl       every refused line with its file, line number and reason

A line is attributed to the uid that owns the file it is in. A file writable by its group or
by others cannot vouch for who wrote a line, so its lines are rejected. Its jobs run in the
owner's primary group from passwd; while that lookup fails, the file waits unread.

**Exactly once**: each pass reads a file from the byte offset stored in the ledger, handles its
complete lines, and commits the new offset in the same SQLite transaction as the job rows. A
partial last line stays for the next pass, unless it is already over-long: then it is rejected
once and skipped to its newline. At most ``Queue.reader.pass_bytes`` of one file are read per
pass.
Every line ends ingested or rejected, whatever it holds, and one file's trouble never stops
another (see :mod:`.ingest`).

**Compaction** (a fully ingested file of at least ``compact_min_bytes``), under the file's
``flock`` so ``carbond submit`` waits: record the intent in the ledger, create an empty
replacement with the same owner and permissions, ``rename`` the old file into ``queue.retired/``,
``link`` the replacement in (keeping a file a raw appender created meanwhile), then record the
new offsets. Writers that opened the old file before the rename keep appending to it; it is
still read until ``retired_grace_s`` after the rename, then deleted. A crash at any step is
finished or undone from the recorded intent on the next pass.
"""

from daemon.queue.files import (
    QUEUE_NAME,
    REJECTED_NAME,
    RETIRED_DIR,
    SPOOL_DIR,
    QueueError,
    append_line,
    append_submission,
    new_job_id,
    submit_target,
)
from daemon.queue.job_request import CancelRequest, JobRequest
from daemon.queue.line import parse_deadline, parse_line
from daemon.queue.reasons import InvalidLineError
from daemon.queue.unread_lines import LineRules, UnreadLines, has_job_line, unread_lines

__all__ = [
    "QUEUE_NAME",
    "REJECTED_NAME",
    "RETIRED_DIR",
    "SPOOL_DIR",
    "CancelRequest",
    "InvalidLineError",
    "JobRequest",
    "LineRules",
    "QueueError",
    "UnreadLines",
    "append_line",
    "append_submission",
    "has_job_line",
    "new_job_id",
    "parse_deadline",
    "parse_line",
    "submit_target",
    "unread_lines",
]
