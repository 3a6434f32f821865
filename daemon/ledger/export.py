"""Export a ledger table as CSV or JSON, written to a temporary file then renamed.

Rows are read and written one at a time, so a table larger than memory exports too. Text a
submitter chose (a job's name) reaches CSV cells that a spreadsheet may open: a cell that would
start a formula there, or that starts with ``'``, is written with a leading ``'``
(:func:`csv_cell`); JSON keeps every value as stored, but a number that is not finite (which
JSON cannot write) is ``null``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol, TextIO, TypeVar

from daemon.ledger.errors import LedgerError
from daemon.ledger.store import Ledger

__all__ = [
    "EXPORT_SUFFIXES",
    "csv_cell",
    "export_table",
    "file_mode",
    "marked",
    "save_figure",
    "write_replacing",
    "write_replacing_bytes",
]

EXPORT_SUFFIXES = {".csv": "csv", ".json": "json"}
_T = TypeVar("_T")

# What makes a spreadsheet read a cell as a formula (OWASP, "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``value`` as a CSV cell: text that a spreadsheet would run as a formula (``=cmd|...``,
    ``+``, ``-``, ``@``, a leading tab or carriage return) gets a leading ``'``, which the
    spreadsheet shows as text (:func:`marked`); numbers and other text are unchanged."""
    return marked(value, formula=True) if isinstance(value, str) else value


def marked(text: str, *, formula: bool = False) -> str:
    """``text`` with a leading ``'`` where it begins with one, and (``formula``) where a
    spreadsheet would run it as a formula: so a reader drops one leading ``'`` of any such
    cell to have the text as stored. The one rule of every CSV carbond writes (and of
    ``report``'s group names in all its formats but JSON). Until 2026-12-07 a cell that
    began with ``'`` was left as it was: a stored ``'=x`` and ``=x`` read alike."""
    if text.startswith("'") or (formula and text.startswith(_FORMULA_STARTS)):
        return "'" + text
    return text


def file_mode(path: Path) -> int:
    """The permissions a file written at ``path`` through a temporary file should get: the
    read/write/execute bits of the regular file it replaces, else what ``open`` would give a
    new file (``0o666`` less the umask); the temporary file itself is created ``0o600``.

    Never a set-user/group-ID or sticky bit, and never a mode read through a symlink at
    ``path`` (which the rename replaces): whoever planted the file or the link there (run as
    root into a folder others can write) would otherwise choose the mode of root's new file,
    e.g. set-user-ID, or that of a file the link names.
    """
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        st = None
    if st is not None and stat.S_ISREG(st.st_mode):
        return stat.S_IMODE(st.st_mode) & 0o777
    umask = os.umask(0o022)  # read it (a CLI, one thread), then put it back
    os.umask(umask)
    return 0o666 & ~umask


def export_table(
    ledger: Ledger,
    table: str,
    path: Path | TextIO,
    fmt: Literal["csv", "json"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Write every row of ``table`` to ``path`` (a file, or an open text stream such as
    stdout); returns the number of rows. With ``since`` or ``until``, the rows of that
    period only (:meth:`Ledger.table_rows`).

    The format is ``fmt``, else the file suffix (``.csv`` or ``.json``); a stream needs
    ``fmt``.

    Raises:
        LedgerError: not an exportable table, a suffix that names no format (without
            ``fmt``), or the file cannot be written (the message names ``path``, never the
            temporary file).
    """
    if not isinstance(path, Path):
        columns, rows = ledger.table_rows(table, since, until)
        return _write_rows(columns, rows, path, fmt or "csv")
    kind = fmt or EXPORT_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        known = " or ".join(EXPORT_SUFFIXES)
        raise LedgerError(f"{path}: unknown extension {path.suffix!r} (use {known})")
    columns, rows = ledger.table_rows(table, since, until)
    try:
        return _write(columns, rows, path, kind)
    except OSError as exc:
        raise LedgerError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def write_replacing(path: Path, write: Callable[[TextIO], _T]) -> _T:
    """``write(out)`` into a temporary file beside ``path``, then renamed over it (a reader
    sees the old file or the new one, never part of one); it gets the permissions of the file
    it replaces, else the umask's (:func:`file_mode`). Returns what ``write`` returns.

    Raises:
        OSError: the file cannot be written (the temporary file is removed).
    """

    def text(out: BinaryIO) -> _T:
        with io.TextIOWrapper(out, encoding="utf-8", newline="") as wrapper:
            return write(wrapper)

    return write_replacing_bytes(path, text)


def write_replacing_bytes(path: Path, write: Callable[[BinaryIO], _T]) -> _T:
    """:func:`write_replacing` for bytes (a figure): a fresh temporary file beside ``path``,
    renamed over it, so a symlink or hard link someone left at ``path`` is replaced, never
    written through.

    Raises:
        OSError: the file cannot be written (the temporary file is removed).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode(path))
        with os.fdopen(fd, "wb") as out:
            result = write(out)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return result


class _Savable(Protocol):
    def savefig(self, fname: BinaryIO, *, dpi: float, format: str) -> None: ...


def save_figure(fig: _Savable, path: Path, *, dpi: float, fmt: str | None = None) -> Path:
    """Save a matplotlib figure to ``path`` through :func:`write_replacing_bytes`, in format
    ``fmt`` (default: ``path``'s suffix, PNG without one). Returns ``path``.

    matplotlib's ``savefig(path)`` opens ``path`` itself and follows a link there: run as root
    in a directory others can write (a shared results folder), it would overwrite whatever file
    a planted symlink names.

    Raises:
        OSError: the file cannot be written.
    """
    kind = fmt or path.suffix.lower().removeprefix(".") or "png"
    write_replacing_bytes(path, lambda out: fig.savefig(out, dpi=dpi, format=kind))
    return path


def _write(columns: Sequence[str], rows: Iterable[Sequence[Any]], path: Path, kind: str) -> int:
    return write_replacing(path, lambda out: _write_rows(columns, rows, out, kind))


def _write_rows(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO, kind: str
) -> int:
    if kind == "json":
        return _write_json(columns, rows, out)
    writer = csv.writer(out)
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
        count += 1
    return count


def _write_json(columns: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO) -> int:
    """The rows as one JSON array of objects, the text ``json.dump(rows, out, indent=2)``
    writes, one row at a time; a number not finite is ``null`` (JSON has no ``Infinity``:
    until 2026-12-07 a REAL stored as +-inf was written so, and no other parser read it)."""
    count = 0
    for row in rows:
        values = (None if type(v) is float and not math.isfinite(v) else v for v in row)
        item = json.dumps(dict(zip(columns, values, strict=True)), indent=2, allow_nan=False)
        out.write(("[\n  " if count == 0 else ",\n  ") + item.replace("\n", "\n  "))
        count += 1
    out.write("\n]\n" if count else "[]\n")
    return count
