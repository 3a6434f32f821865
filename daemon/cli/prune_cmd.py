"""``carbond prune-logs --days N``: remove the log files of jobs that ended N days ago."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from daemon.cli.context import add_ledger_options, number_within, open_ledger, settings_from
from daemon.cli.output import print_json
from daemon.errors import DaemonError
from daemon.reports.render import counted
from daemon.states import FINAL_STATES

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``prune-logs``."""
    prune = subparsers.add_parser(
        "prune-logs",
        help="remove the files in logs/ of jobs that ended more than --days days ago",
        description="Removes state_dir/logs/<job>.* (stdout, stderr, spec, status, start "
        "claims) of every job final in the ledger for more than --days days and whose files "
        "were not written since; files of other jobs (also of a job whose run is still being "
        "stopped), and of jobs the ledger does not know, are left. Safe while the daemon runs.",
    )
    add_ledger_options(prune)
    prune.add_argument(
        "--days",
        type=number_within(0, 36_500, "days"),
        required=True,
        help="keep the files of jobs that ended more recently than this, 0 to 36500",
    )
    prune.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    prune.set_defaults(func=_prune)


def _prune(args: argparse.Namespace) -> int:
    from daemon.assemble import LOG_DIR_NAME
    from daemon.executors.logprune import prune_logs

    settings = settings_from(args)
    log_dir = settings.state_dir / LOG_DIR_NAME
    cutoff = datetime.now(UTC) - timedelta(days=args.days)
    # One read of the ledger: a lost GPU's job is final while its run is still being stopped
    # (its wrapper runs on and writes its files), and both are read as of the same moment.
    with open_ledger(settings.state_dir) as ledger, ledger.snapshot():
        stopping = {s.run.job_id for s in ledger.stopping_runs()}

        def ended_at(job_id: str) -> datetime | None:
            job = ledger.job(job_id)  # UnknownJobError is a LookupError: an unknown job
            if job.state not in FINAL_STATES or job_id in stopping:
                return None
            return job.updated_at

        try:
            done = prune_logs(log_dir, ended_at, cutoff, dry_run=args.dry_run)
        except OSError as exc:
            raise DaemonError(f"{log_dir}: cannot prune: {exc.strerror or exc}") from exc
    if args.json:
        print_json(
            {
                "log_dir": str(log_dir), "cutoff": cutoff.isoformat(), "dry_run": args.dry_run,
                "jobs": list(done.jobs), "files": done.files, "bytes": done.size_bytes,
                "kept_jobs": done.kept_jobs, "unknown_files": list(done.unknown_files),
            }
        )  # fmt: skip
        return 0
    verb = "would remove" if args.dry_run else "removed"
    print(f"{log_dir}: {verb} {counted(done.files, 'file')} ({done.size_bytes / 2**20:.1f} MiB) "
          f"of {counted(len(done.jobs), 'job')} that ended before {cutoff:%Y-%m-%d %H:%M} UTC; "
          f"kept the files of {counted(done.kept_jobs, 'job')} (not final or still being "
          "stopped, or ended or written since)")  # fmt: skip
    if done.unknown_files:
        print(f"left {counted(len(done.unknown_files), 'file')} of jobs the ledger does not "
              f"know, e.g. {done.unknown_files[0]}")  # fmt: skip
    return 0
