"""``carbond cancel ID``: a cancel line appended where the daemon reads it after the job's own
line: the caller's queue file, or, for root and a job the daemon has not read yet, the queue
file of the user whose job it is."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path

from daemon.cli.context import add_ledger_options, open_ledger, settings_from
from daemon.cli.output import print_json
from daemon.cli.own_queue import append_own_line
from daemon.cli.rejected import rejected_naming
from daemon.cli.unread import UnreadJob, line_rules, unread_lookup
from daemon.errors import UsageError
from daemon.ledger import JobRecord, UnknownJobError
from daemon.queue import REJECTED_NAME, append_line, submit_target
from daemon.reports.lines import user_name
from daemon.settings import Settings
from daemon.statedir import LEDGER_NAME
from daemon.states import FINAL_STATES

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``cancel``."""
    cancel = subparsers.add_parser(
        "cancel",
        help="ask the daemon to cancel a job of yours",
        description="Append a cancel line for a job of yours (root: anyone's) to the queue; "
        "the daemon acts on it: a waiting job is cancelled before it starts, a running one "
        "gets SIGTERM, then SIGKILL after executors.local.grace_s (default 30 s; Slurm: "
        "scancel). Works while the daemon is down, also for a job it has not read yet.",
    )
    add_ledger_options(cancel)
    cancel.add_argument("job_id", metavar="ID", help="the job's id (carbond jobs)")
    cancel.set_defaults(func=_cancel)


def _cancel(args: argparse.Namespace) -> int:
    """``carbond cancel ID``: append the cancel line where the daemon reads it after the job's."""
    settings = settings_from(args)
    uid = os.getuid()
    job = _ledger_job(settings.state_dir, args.job_id)
    other: tuple[Path, int] | None = None  # root: another user's queue file holding the job
    held: str | None = None  # why the daemon holds the job's file unread for now
    if job is None:  # not ingested yet (the daemon may be down): still in a queue file?
        unread = _unread(settings, args.job_id, uid)
        own = unread.queue_file == submit_target(settings.state_dir, uid)
        other = None if own else (unread.queue_file, unread.uid)
        job_id, state, held = args.job_id, None, unread.held
    else:
        if uid not in (job.uid, 0):
            raise UsageError(f"job {job.job_id} belongs to {user_name(job.uid)}, not to you")
        if job.state in FINAL_STATES:
            # not 'is already succeeded': the state is how it ended
            raise UsageError(f"job {job.job_id} has already ended ({job.state}): nothing to cancel")
        job_id, state = job.job_id, job.state
    # after the job's own line in the same file: the daemon reads the job, then the cancel
    if other is not None:  # that user's file, checked to be still theirs (never re-owned)
        target = other[0]
        append_line(target, {"cancel": job_id}, settings.queue.max_line_bytes, uid=other[1])
    else:
        target = append_own_line(settings, {"cancel": job_id})
    if args.json:
        print_json({"job_id": job_id, "cancel_requested": True, "state": state,
                    "queue_file": str(target), "held": held})  # fmt: skip
    elif state is None:
        where = f"; appended to {user_name(other[1])}'s {target}" if other is not None else ""
        # held: the cancel waits with its job's line, read when the daemon reads that file
        wait = "" if held is None else (f"{held}; the cancel follows its line there, so it takes "
                                        "effect when the daemon reads that file: ")  # fmt: skip
        print(f"cancel requested for {job_id} (not read by the daemon yet: {wait}it will be "
              f"cancelled before it starts{where})")  # fmt: skip
    else:
        print(f"cancel requested for {job_id} (was {state})")
    return 0


def _unread(settings: Settings, job_id: str, uid: int) -> UnreadJob:
    """The line of ``job_id``, which the daemon has not read, that the caller's cancel must
    follow: in the caller's own queue file, or, for root, in the file of another user, its
    owner's (the daemon reads a file in order, so the cancel must follow the job's line in
    that same file: it then reads as that user's own cancel; it takes effect when the daemon
    reads that file: later, when it holds the file, ``held``). The job's line is the one
    ``carbond jobs`` and ``status`` show: where several users' files hold the id, the daemon
    takes the first it reads, and rejects the others.

    Raises:
        UsageError: the line the daemon takes for it is another user's, or was or will be
            rejected.
        UnknownJobError: no queue file the caller may cancel in holds it (exit 2, as before).
    """
    state_dir, now, rules = settings.state_dir, datetime.now(UTC), line_rules(settings)
    found = unread_lookup(state_dir, job_id, uid, now=now, rules=rules)
    job = found.job
    if job is not None:
        if uid not in (job.uid, 0):  # the main queue.jsonl's, read before the caller's file
            raise UsageError(f"job {job_id} belongs to {user_name(job.uid)}, not to you (its "
                             f"line {job.queue_file}:{job.line_no}, not read yet)")  # fmt: skip
        return job
    rejected = rejected_naming(state_dir / REJECTED_NAME, job_id, uid)
    if rejected:  # its line is in a queue file all the same: say why it is no job
        last = rejected[-1]
        where = f"{last['file']} line {last['line_no']}: {last['reason']}"
        raise UsageError(
            f"job {job_id!r} was never queued: its line was rejected ({where}); nothing to cancel"
        )
    if found.doomed is not None:  # its line is there, but no job: say so, and why
        raise UsageError(f"job {job_id!r} will never be queued: {found.doomed}; nothing to cancel")
    if uid != 0:
        raise UnknownJobError(job_id, f"unknown job {job_id!r}: neither the ledger nor your "
                              f"queue file {submit_target(state_dir, uid)} has it")  # fmt: skip
    raise UnknownJobError(job_id, f"unknown job {job_id!r}: neither the ledger nor any queue "
                          "file has it")  # fmt: skip


def _ledger_job(state_dir: Path, job_id: str) -> JobRecord | None:
    """``job_id``'s ledger record; None when the ledger has no such job, or there is no
    ledger yet (no daemon has started: only the queue files know the jobs)."""
    if not (state_dir / LEDGER_NAME).is_file():
        return None
    with open_ledger(state_dir) as ledger:
        try:
            return ledger.job(job_id)
        except UnknownJobError:
            return None
