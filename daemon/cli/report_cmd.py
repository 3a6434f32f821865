"""``carbond report``: carbon, energy and savings over a period, grouped, as a table, CSV, JSON
or Markdown; ``--audit`` for the monthly emissions statement and ``--plot`` for the figures.

Reads the ledger only (read-only connection), so it runs beside the daemon; the report is
read whole (into a temporary file past a few MB) and the ledger closed before stdout is
written, so a pager never holds the ledger's read transaction open.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

from daemon.cli.context import add_common_options, open_ledger, settings_from
from daemon.cli.output import held_stdout, printable, stderr_line, writable
from daemon.errors import DaemonError, UsageError
from daemon.ledger.export import write_replacing
from daemon.reports.lines import JobLine, ledger_lines, read_lines, signal_sources
from daemon.reports.render import FORMATS, Format, write_report
from daemon.reports.summary import (
    GROUPINGS,
    Grouping,
    ReportRow,
    job_row,
    summarise,
    totals_row,
)
from daemon.statedir import LEDGER_NAME

if TYPE_CHECKING:
    from daemon.ledger import Ledger

__all__ = ["add_period_options", "parse_when", "period", "register", "write_atomic"]

_T = TypeVar("_T")
_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhdw])$", re.ASCII)  # not "-١d"
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_FORMS = (
    "RFC 3339 (2026-03-01T00:00Z), a date (2026-03-01), or a span before now: -N followed by "
    "s, m, h, d or w (-90m, -12h, -7d, -2w)"
)


SAVINGS_AGAINST = (
    "the run-now counterfactual stored with each job's first decision: what run-now would "
    "have done with the same arrivals (the fastest fitting GPU free then, else the first to "
    "free up, from the first planning round at or after it does; a round's jobs claim GPUs "
    "first come, first served, and earlier rounds' counterfactual runs hold theirs), scaled "
    "as the run turned out (operational grams by the run's energy over the energy predicted, "
    "embodied grams by its duration over the duration predicted) and priced at the intensity "
    "realised over its own window (the ledger's samples up to the job's end, the forecast "
    "past it; at a region with on-site PV or a battery, blended with the shares the site "
    "covered over it, docs/sites.md); a job that failed or was cancelled saves nothing, nor "
    "does one run-now would have missed (its counterfactual starting at or after its "
    "deadline: run-now expires it waiting; counted in run_now_missed)"
)
"""What a report's savings are against (its ``savings_against``; README "Reports")."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``report``."""
    report = subparsers.add_parser(
        "report",
        help="carbon, energy and savings over a period, grouped",
        description="Finished jobs' energy, emissions (operational + embodied), intensity used, "
        "SCI and savings against the run-now counterfactual, from the ledger.",
    )
    add_common_options(report)
    report.add_argument("--state-dir", type=Path, help="override state_dir (the ledger's home)")
    add_period_options(report)
    report.add_argument("--by", choices=GROUPINGS, help="group rows by (default region)")
    report.add_argument("--format", choices=FORMATS, default=None,
                        help="table, csv, json or md (default: --output's suffix, .csv, .json "
                        "or .md, else table)")  # fmt: skip
    # str, not Path: Path("./-") is Path("-"), and "./-" is a file named "-" (as for export)
    report.add_argument("--output", "-o", metavar="FILE",
                        help="write to FILE instead of stdout (- is stdout; ./- a file "
                        "named -)")  # fmt: skip
    report.add_argument("--plot", metavar="FILE.png",
                        help="also draw emissions over time, intensity per region with the jobs, "
                        "and predicted vs measured energy, into FILE.png (not -: a "
                        "file)")  # fmt: skip
    report.add_argument("--audit", action="store_true",
                        help="monthly location-based emissions statement (Markdown)")  # fmt: skip
    report.set_defaults(func=_report)


def add_period_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--since`` and ``--until`` (read by :func:`period`): ``report``'s and ``export``'s."""
    parser.add_argument(
        "--since",
        help="jobs finished from: RFC 3339, a date, or a span before now (-90m, -12h, -7d, -2w)",
    )
    parser.add_argument("--until", help="jobs finished before: as --since (default: now)")


def period(args: argparse.Namespace, now: datetime) -> tuple[datetime | None, datetime | None]:
    """``--since`` and ``--until`` as aware UTC times (None: not given), read with
    :func:`parse_when`; the period ``[since, until)`` they leave is checked to hold time.

    Raises:
        UsageError: a time that does not parse, or a period that holds none (names the flag).
    """
    since = parse_when(args.since, now, "--since") if args.since is not None else None
    until = parse_when(args.until, now, "--until") if args.until is not None else None
    _check_period(args.since, since, until, now)
    return since, until


def parse_when(text: str, now: datetime, flag: str) -> datetime:
    """``text`` as an aware UTC time: RFC 3339 (naive: UTC), a date (its midnight UTC), or
    ``-N{s,m,h,d,w}`` before ``now``.

    Raises:
        UsageError: none of those (names ``flag``), or nothing (``--since "$START"`` with the
            variable unset was taken as no ``--since``: a report over the whole ledger).
    """
    if not text.strip():
        raise UsageError(f"{flag} is empty: expected {_FORMS}")
    match = _RELATIVE.match(text.strip())
    if match:
        try:
            return now - timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
        except OverflowError:  # before year 1
            raise UsageError(f"{flag} {text!r}: further back than any date") from None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected {_FORMS}") from None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise UsageError(f"{flag} {text!r}: outside years 1-9999 in UTC") from None


def _report(args: argparse.Namespace) -> int:
    _paths(args)
    settings = settings_from(args)
    now = datetime.now(UTC)
    since, until = period(args, now)
    if args.audit and (args.json or args.format not in (None, "md")):
        flag = "--json" if args.json else f"--format {args.format}"
        raise UsageError(f"--audit writes a Markdown statement, not {flag}: drop {flag}")
    if args.json and args.format not in (None, "json"):  # --json won, the --format dropped
        raise UsageError(f"--json and --format {args.format} ask for two formats: give one "
                         "(--json is --format json)")  # fmt: skip
    fmt = _format(args)
    if args.audit and args.by is not None:  # the statement's grouping is its own
        raise UsageError(f"--audit writes the statement by month (and region), not --by "
                         f"{args.by}: drop --by {args.by}")  # fmt: skip
    args.by = args.by or "region"
    if args.plot is not None and args.output is not None and _one_file(args.plot, args.output):
        # the report would be written over the figure drawn first
        raise UsageError(f"--output {args.output} and --plot {args.plot} are one file: name two")
    if args.plot is not None:  # a format matplotlib cannot draw, before any work
        from daemon.reports.plots import image_format

        image_format(args.plot)
    writable(args.output)  # a file that cannot be written, before any work too
    writable(args.plot)
    # The report is read whole and the ledger closed before stdout is written (held_stdout):
    # a pager reading slowly, or a pipe nobody reads, held the read transaction open and kept
    # the daemon's WAL checkpoints from completing for as long as it sat there.
    with held_stdout() as stdout, open_ledger(settings.state_dir) as ledger, ledger.snapshot():
        # --audit and --plot need every line; a report alone sums them as they are read
        held = args.audit or args.plot is not None
        lines = ledger_lines(ledger, since, until) if held else []
        if args.audit:
            from daemon.reports.audit import audit_statement

            text = audit_statement(ledger, lines, settings, since, until, now)

            def write(out: TextIO) -> None:
                out.write(text)
        else:
            day = "; a day is the UTC date a job finished" if args.by == "day" else ""
            meta = {
                "title": f"carbond report by {args.by}",
                "by": args.by,
                "since": since.isoformat() if since else None,
                "until": (until or now).isoformat(),
                "counted": "the jobs that finished in [since, until), UTC, each in full in "
                f"the period it finished{day}",
                # a future end: what will run then is not known, what runs now is
                **_running(ledger, until, now),
                "expired_unstarted": ledger.expired_unstarted(since, until),
                "run_now_missed": ledger.run_now_missed(since, until),
                "ledger": str(settings.state_dir / LEDGER_NAME),
                "signal": signal_sources(ledger, since, until),
                "savings_against": SAVINGS_AGAINST,
            }
            rows, totals = _rows(ledger, lines if held else None, args.by, since, until)
            tty = args.output is None and sys.stdout.isatty()  # boxed for a terminal only
            width = shutil.get_terminal_size().columns if tty else None  # its width, too

            def write(out: TextIO) -> None:
                write_report(out, fmt, rows, totals, meta, width=width, tty=tty)

        if args.plot is not None:
            from daemon.reports.plots import plot_report

            try:
                plot_report(ledger, lines, args.plot)
            except OSError as exc:  # as --output: name the file
                raise DaemonError(f"{args.plot}: cannot write: {exc.strerror or exc}") from exc
            stderr_line(f"wrote {printable(str(args.plot))}")  # lost, not failed: 2>/dev/full
        if args.output is not None:
            write_atomic(args.output, write)
            stderr_line(f"wrote {printable(str(args.output))}")  # as --plot says; stdout empty
            return 0
        write(stdout)
    return 0


def _paths(args: argparse.Namespace) -> None:
    """``--output`` and ``--plot`` as paths: ``--output -`` is stdout (None, as with no
    ``--output``; ``export``'s ``-`` too), ``./-`` a file named ``-``.

    Raises:
        UsageError: ``--plot -``: a figure is written to a file.
    """
    if args.plot == "-":
        raise UsageError("--plot -: a figure cannot go to stdout: name a file (./- for one "
                         "named -)")  # fmt: skip
    args.output = None if args.output in (None, "-") else Path(args.output)
    args.plot = None if args.plot is None else Path(args.plot)


def _running(ledger: Ledger, until: datetime | None, now: datetime) -> dict[str, int | None]:
    """``running_at_until``: the jobs running at the period's end, when it is not ahead;
    for a period that ends in the future, ``running_now`` instead (the jobs running now were
    counted as running at that end, which nothing knows yet)."""
    if until is not None and until > now:
        return {"running_at_until": None, "running_now": ledger.running_at(now)}
    return {"running_at_until": ledger.running_at(until or now)}


def _one_file(first: Path, second: Path) -> bool:
    """Whether two paths name one file (``r.png`` and ``./r.png``, a link and its target)."""
    try:
        if first.exists() and second.exists():
            return first.samefile(second)
        return first.resolve() == second.resolve()
    except OSError:  # unreadable: writable() names it
        return False


def _check_period(
    text: str | None, since: datetime | None, until: datetime | None, now: datetime
) -> None:
    """Refuse a period that holds no time: ``--until`` not after ``--since``, a ``--since``
    in the future without ``--until``, or one that is now (``-0d``: ``[now, now)``).

    Raises:
        UsageError: names the flags and the times they gave.
    """
    if since is None:
        return
    if until is not None and until <= since:
        raise UsageError(
            f"--until ({until.isoformat()}) is not after --since ({since.isoformat()})"
        )
    if until is None and since > now:
        raise UsageError(
            f"--since ({since.isoformat()}) is in the future: no job has finished then yet "
            "(give --until too for a period ahead)"
        )
    if until is None and since == now:
        raise UsageError(
            f"--since {text!r} is now, which leaves an empty period up to now: give a span "
            "before now (-90m, -12h, -7d, -2w) or a time"
        )


def _rows(
    ledger: Ledger,
    lines: list[JobLine] | None,
    by: Grouping,
    since: datetime | None,
    until: datetime | None,
) -> tuple[Iterable[ReportRow], Callable[[], ReportRow]]:
    """The report's rows and how to get its totals row. ``--by job`` (no ``lines`` held): each
    row made and written as its job is read, in job id order, then the totals summed over a
    second read in the order the jobs finished (the figures, to the last bit, of summing the
    rows in that order), both in the caller's snapshot. 200,000 jobs took 37 s and 1.7 GB
    holding every line, row and the JSON text."""
    if lines is None and by == "job":
        rows = (job_row(line) for line in read_lines(ledger, since, until, by_job=True))
        return rows, lambda: totals_row(read_lines(ledger, since, until))
    groups, totals = summarise(read_lines(ledger, since, until) if lines is None else lines, by)
    return groups, lambda: totals


def _format(args: argparse.Namespace) -> Format:
    """What the report is written as: ``--json`` or ``--format``, else what the suffix of
    ``--output`` names (``report -o march.csv`` is CSV), else the table (``--audit``: md).

    Raises:
        UsageError: the suffix names another format than the one asked for (``--format csv
            -o x.json``): the file would hold one format under the other's name.
    """
    asked: Format | None = "md" if args.audit else "json" if args.json else args.format
    named = _SUFFIXES.get(args.output.suffix.lower()) if args.output is not None else None
    if asked is None:
        return named or "table"
    if named is not None and named != asked:
        flag = "--audit" if args.audit else "--json" if args.json else f"--format {asked}"
        better = args.output.with_suffix(".txt" if asked == "table" else f".{asked}")
        raise UsageError(
            f"{args.output}: a {args.output.suffix} file, but {flag} writes {_NAMES[asked]} "
            f"(name it {better})"
        )
    return asked


# What an --output suffix names, and each format's name in messages.
_SUFFIXES: dict[str, Format] = {".csv": "csv", ".json": "json", ".md": "md"}
_NAMES: dict[Format, str] = {"table": "a text table", "csv": "CSV", "json": "JSON",
                             "md": "Markdown"}  # fmt: skip


def write_atomic(output: Path, write: Callable[[TextIO], _T]) -> _T:
    """What ``write(out)`` writes, written to ``output`` through a temporary file renamed over
    it (with the permissions of the file it replaces, else the umask's:
    :func:`write_replacing`); returns what ``write`` returns.

    Raises:
        DaemonError: the file cannot be written (names ``output``, never the temporary file:
            e.g. ``output`` is a directory).
    """
    try:
        return write_replacing(output, write)
    except OSError as exc:  # name the target, not the temporary file
        raise DaemonError(f"{output}: cannot write: {exc.strerror or exc}") from exc
