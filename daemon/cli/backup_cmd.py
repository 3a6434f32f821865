"""``carbond backup FILE``: a consistent copy of the ledger, taken while the daemon runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from daemon.cli.context import add_ledger_options, settings_from
from daemon.cli.output import print_json

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``backup``."""
    backup = subparsers.add_parser(
        "backup",
        help="copy the ledger consistently while the daemon writes it (SQLite online backup)",
        description="carbond backup FILE copies state_dir/ledger.db to FILE with SQLite's "
        "online backup: consistent while the daemon runs, one self-contained file (no -wal), "
        "checked, then renamed over FILE. Restore: docs/operations.md, Backup and restore.",
    )
    add_ledger_options(backup)
    backup.add_argument("output", type=Path, metavar="FILE", help="the backup file to write")
    backup.set_defaults(func=_backup)


def _backup(args: argparse.Namespace) -> int:
    from daemon.ledger.backup import backup_ledger
    from daemon.ledger.readonly import missing_ledger_error
    from daemon.statedir import LEDGER_NAME

    settings = settings_from(args)
    ledger = settings.state_dir / LEDGER_NAME
    if not ledger.is_file():  # as the commands that read it say (exit 2)
        raise missing_ledger_error(ledger)
    done = backup_ledger(ledger, args.output)
    if args.json:
        print_json(
            {
                "ledger": str(done.source),
                "path": str(done.path),
                "bytes": done.size_bytes,
                "schema_version": done.schema_version,
                "jobs": done.jobs,
            }
        )
    else:
        print(
            f"backed up {done.source} to {done.path}: {done.size_bytes} bytes, schema "
            f"v{done.schema_version}, {done.jobs} job{'' if done.jobs == 1 else 's'}"
        )
    return 0
