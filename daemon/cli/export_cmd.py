"""``carbond export``: a ledger table written as CSV or JSON, or every finished job as a row of
CodeCarbon's ``emissions.csv``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from daemon.cli.context import add_ledger_options, open_ledger, settings_from
from daemon.cli.output import held_stdout, print_json, writable
from daemon.cli.report_cmd import add_period_options, period
from daemon.errors import UsageError
from daemon.ledger import EXPORTABLE, Ledger, export_table
from daemon.ledger.export import EXPORT_SUFFIXES
from daemon.reports.render import counted

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``export``."""
    export = subparsers.add_parser(
        "export",
        help="write a ledger table as CSV or JSON, or finished jobs as CodeCarbon emissions.csv",
        description="carbond export TABLE FILE writes a ledger table (format from --format or "
        "the suffix); carbond export --format codecarbon FILE writes every finished job as a "
        "row of CodeCarbon's emissions.csv. --since/--until: only the period's rows, as "
        "carbond report counts it (a job's rows when it finished in [since, until), or "
        "ended there unstarted: cancelled then, or expired with its deadline then; a sample "
        "when it was taken then).",
    )
    add_ledger_options(export)
    add_period_options(export)
    export.add_argument("table", nargs="?", choices=EXPORTABLE, help="ledger table")
    export.add_argument("output", help="file to write (.csv or .json); - for stdout")
    export.add_argument("--format", dest="fmt", choices=("csv", "json", "codecarbon"),
                        help="default: from the file suffix")  # fmt: skip
    export.set_defaults(func=_export)


def _open(args: argparse.Namespace) -> Ledger:
    return open_ledger(settings_from(args).state_dir)


def _export(args: argparse.Namespace) -> int:
    # "-": stdout (CSV unless --format json), the data only; "./-" is a file named "-".
    output = None if args.output == "-" else Path(args.output)
    if output is None and args.json:
        raise UsageError("export to - writes the rows themselves to stdout: drop --json "
                         "(--format json writes them as JSON)")  # fmt: skip
    since, until = period(args, datetime.now(UTC))
    if args.fmt is not None and output is not None:
        _suffix_agrees(output, "csv" if args.fmt == "codecarbon" else args.fmt, args.fmt)
    if args.fmt == "codecarbon":
        return _export_codecarbon(args, output, since, until)
    if args.table is None and args.output in EXPORTABLE:  # `export outcomes`: no file
        raise UsageError(f"export {args.output}: name the file to write "
                         f"(carbond export {args.output} {args.output}.csv)")  # fmt: skip
    if args.table is None:
        raise UsageError("export: name a table (" + ", ".join(EXPORTABLE) + ") or use "
                         "--format codecarbon")  # fmt: skip
    if output is None:  # held_stdout: the table read whole before stdout is written
        with held_stdout() as stdout, _open(args) as ledger:
            export_table(ledger, args.table, stdout, args.fmt or "csv", since, until)
        return 0
    if args.fmt is None and output.suffix.lower() not in EXPORT_SUFFIXES:
        known = " or ".join(EXPORT_SUFFIXES)
        raise UsageError(f"{output}: unknown extension {output.suffix!r} (use {known})")
    with _open(args) as ledger:
        rows = export_table(ledger, args.table, output, args.fmt, since, until)
    if args.json:
        print_json({"table": args.table, "path": str(output), "rows": rows})
    else:
        print(f"wrote {counted(rows, 'row')} of {args.table} to {output}")
    return 0


def _suffix_agrees(output: Path, kind: str, fmt: str) -> None:
    """Refuse a file whose suffix names the other format than ``--format`` writes
    (``--format codecarbon x.json`` wrote CSV into x.json); another suffix is taken as asked.

    Raises:
        UsageError: ``.csv`` for JSON or ``.json`` for CSV (names the file and the fix).
    """
    named = EXPORT_SUFFIXES.get(output.suffix.lower())
    if named is not None and named != kind:
        raise UsageError(
            f"{output}: a .{named} file, but --format {fmt} writes {kind.upper()} "
            f"(name it {output.with_suffix('.' + kind)})"
        )


def _export_codecarbon(
    args: argparse.Namespace, output: Path | None, since: datetime | None, until: datetime | None
) -> int:
    from daemon.cli.report_cmd import write_atomic
    from daemon.reports.codecarbon import write_codecarbon
    from daemon.reports.lines import ledger_lines

    if args.table is not None:
        raise UsageError("export --format codecarbon writes finished jobs; drop the table name")
    writable(output)  # before reading every finished job
    with _open(args) as ledger:
        lines = ledger_lines(ledger, since, until)
    if output is None:
        write_codecarbon(lines, sys.stdout)
        return 0
    rows = write_atomic(output, lambda out: write_codecarbon(lines, out))
    if args.json:
        print_json({"format": "codecarbon", "path": str(output), "rows": rows})
    else:
        print(f"wrote {counted(rows, 'finished job')} to {output} (CodeCarbon emissions.csv)")
    return 0
