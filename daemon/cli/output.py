"""Shared output helpers for the CLI: JSON, tables and the one-line error convention."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, TextIO, cast

from daemon.errors import DaemonError, UsageError
from daemon.ledger import UnknownJobError
from daemon.reports.render import fixed
from daemon.settings import ConfigError
from forecasts import ForecastsError, TraceFormatError, UnknownZoneError
from policies import UnknownPolicyError
from policies.errors import CatalogError, InvalidWorkloadError

__all__ = [
    "EXIT_FAILURE", "EXIT_USAGE", "SPOOL_BYTES", "clean_json", "error_text", "exit_code", "fail",
    "held_stdout", "note", "print_json", "print_table", "printable", "stderr_line", "writable",
]  # fmt: skip

EXIT_FAILURE = 1
_PIPED_WIDTH = 200  # piped tables are at least this wide (a long title's line)
_UNFOLDED = 1_000_000  # the width a piped table is measured in: no cell folds
EXIT_USAGE = 2
_JSON_TOKENS_A_WRITE = 65_536

_USAGE_ERRORS: tuple[type[BaseException], ...] = (
    UsageError,
    ConfigError,
    CatalogError,
    InvalidWorkloadError,
    UnknownZoneError,
    TraceFormatError,  # a trace file named on the command line or in the config
    UnknownPolicyError,
    UnknownJobError,
)


def fail(exc: BaseException) -> int:
    """Print ``exc`` as one ``carbond: error:`` line on stderr and return its exit code.

    Errors that carbond does not know are re-raised: a bug should show its traceback.
    """
    code = exit_code(exc)
    stderr_line(f"carbond: error: {error_text(exc)}")  # the exit code still says, if it is lost
    return code


def exit_code(exc: BaseException) -> int:
    """The exit code of a carbond error: :data:`EXIT_USAGE` for bad input, else
    :data:`EXIT_FAILURE`. Errors that carbond does not know are re-raised."""
    if isinstance(exc, _USAGE_ERRORS):
        return EXIT_USAGE
    if isinstance(exc, DaemonError | ForecastsError | OSError):
        return EXIT_FAILURE
    raise exc


def error_text(exc: BaseException) -> str:
    """What the ``carbond: error:`` line says of ``exc``. A message may quote what a user or a
    file wrote (a zone name, a path): its control characters (line breaks too) are escaped;
    an invalid config is one line per problem."""
    if isinstance(exc, ConfigError):
        return "invalid configuration:" + "".join(f"\n  {printable(p)}" for p in exc.problems)
    return printable(str(exc))


def note(text: str) -> None:
    """Print ``text`` as one ``carbond: note:`` line on stderr (control characters escaped,
    :func:`printable`), written as the error line is: a stderr that cannot take it loses the
    line, not the command (its output and exit code stand)."""
    stderr_line(f"carbond: note: {printable(text)}")


def stderr_line(line: str) -> None:
    """Write ``line`` (a ``carbond: note:``, ``warning:`` or ``error:`` line, or what a
    command says it did) to stderr; where that fails (``2>/dev/full``) the line is lost, as with
    ``2>&-``, and stderr is dropped for the rest of the command (:func:`_drop_stderr`)."""
    try:
        print(line, file=sys.stderr)
    except OSError:
        _drop_stderr()


def _drop_stderr() -> None:
    """Point fd 2 at /dev/null so that the line still buffered for it is dropped at exit, not
    written again (and failed again) by the interpreter's last flush."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stderr.fileno())
    except (OSError, ValueError):  # a stderr with no fd (a test's capture): nothing to hold
        pass
    finally:
        os.close(devnull)


def clean_json(value: Any) -> Any:
    """Make ``value`` JSON-safe: NaN/inf become null, tuples lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def print_json(payload: Any) -> None:
    """Print ``payload`` as indented JSON with stable key order, written in pieces of many
    tokens (``json.dump`` writes every token: a million writes for a long ``jobs --json``)."""
    tokens = json.JSONEncoder(indent=2, default=str).iterencode(clean_json(payload))
    while piece := "".join(islice(tokens, _JSON_TOKENS_A_WRITE)):
        sys.stdout.write(piece)
    sys.stdout.write("\n")


# What a command's output holds in memory before it goes to a temporary file (a report --by
# job over 200,000 jobs is 0.3 GB of JSON).
SPOOL_BYTES = 8 << 20


class _Spool(tempfile.SpooledTemporaryFile[str]):
    """A command's output on its way to stdout: says it is a terminal when stdout is one (a
    table is boxed, as printed straight to it)."""

    def __init__(self, tty: bool) -> None:
        super().__init__(max_size=SPOOL_BYTES, mode="w+", encoding="utf-8", newline="")
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@contextmanager
def held_stdout() -> Iterator[TextIO]:
    """Hold what the block writes to stdout (``print``, :func:`print_json`, a table, or the
    file it yields) in a temporary file, in memory up to :data:`SPOOL_BYTES`, then on disk,
    and copy it to stdout once the block has ended; a block that raises writes nothing.

    Open the ledger inside it: its read transaction has ended before the first byte reaches
    stdout, so a pager reading slowly, or a pipe nobody reads, never keeps the daemon's WAL
    checkpoints from completing for as long as it sits there.
    """
    real = sys.stdout
    spool = _Spool(real.isatty())
    try:
        sys.stdout = cast(TextIO, spool)
        try:
            yield sys.stdout
        finally:
            sys.stdout = real
        spool.seek(0)
        shutil.copyfileobj(spool, real)
    finally:
        spool.close()


def printable(text: str) -> str:
    """``text`` with its control characters (a terminal's escape sequences, line breaks,
    direction overrides) written as Python escapes (``\\x1b``): a job's name is its
    submitter's choice and must not drive the terminal of whoever lists it."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    unfolded: bool = False,
) -> None:
    """Print a table with rich (boxed on a TTY, plain ASCII when piped: ``+``, ``-`` and ``|``
    for ``grep``, ``awk`` and files). The title and cells are text as given: rich's
    ``[markup]`` in them is shown, not applied, and control characters are escaped
    (:func:`printable`). Piped, a table is 200 characters wide, a longer cell folded over
    lines; ``unfolded`` (tables of figures, whose rows grep and awk read: ``carbond replay``,
    ``carbond tune``) keeps each row on one line however wide."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            """rich exits 1 when the reader goes away; ``main`` treats it as a normal end."""
            self.quiet = True
            raise BrokenPipeError

    tty = sys.stdout.isatty()
    # a title may quote a path (`jobs --state rejected`): "[/x]" in it was a MarkupError
    shown = None if title is None else Text(printable(title))
    table = Table(title=shown, show_lines=False, box=box.HEAVY_HEAD if tty else box.ASCII)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(printable(_fmt(cell))) for cell in row))
    if tty:
        _Console().print(table)
        return
    # Unfolded: until 2026-12-07 carbond replay's 19 columns, 200 wide, folded their cells over
    # lines, "carbon-w" above "indow", so `grep carbon-window` found no row.
    natural = _Console(width=_UNFOLDED).measure(table).maximum if unfolded else 0
    _Console(width=max(_PIPED_WIDTH, natural)).print(table)


def _fmt(cell: object) -> str:
    if isinstance(cell, float):
        if cell == 0:
            return "0"
        if abs(cell) >= 100:  # a whole number as below 100 writes it: 300, not 300.0 beside 70
            return f"{cell:,.0f}" if cell.is_integer() else f"{cell:,.1f}"
        return fixed(cell)  # not .4g: below 0.0001 that wrote 4.13e-05
    if cell is None:
        return "-"
    return str(cell)


def writable(path: Path | None, *, make: bool = False) -> None:
    """Check an output path before the work that writes it, not after: a folder (``make``) is
    created now, a file's folder must exist; either must be writable (None: not asked for),
    which a file created there and removed proves: ``os.access`` says yes to root for any
    folder, ``/proc`` too (until 2026-12-07 ``forecast backtest --plot /proc/x.png`` and
    ``report --plot`` failed only after all their work).

    Raises:
        DaemonError: ``path`` cannot be written: ``<path>: cannot write: <reason>``, as
            ``export`` words it.
    """
    if path is None:
        return
    folder = path if make else path.parent
    try:
        if make and folder.exists() and not folder.is_dir():  # mkdir would say "File exists"
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        if make:
            folder.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        if not os.access(folder, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        _probe(folder)
    except OSError as exc:
        raise DaemonError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def _probe(folder: Path) -> None:
    """Create a file in ``folder`` as the writers do (a temporary file beside the target,
    :func:`daemon.ledger.export.write_replacing`) and remove it.

    Raises:
        OSError: it cannot be created there.
    """
    fd, name = tempfile.mkstemp(dir=folder, prefix=".carbond-check-", suffix=".tmp")
    os.close(fd)
    os.unlink(name)
