"""Export a ledger table as CSV or JSON, written to a temporary file then renamed."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Literal

from daemon.ledger.store import Ledger, LedgerError

__all__ = ["EXPORT_SUFFIXES", "export_table"]

EXPORT_SUFFIXES = {".csv": "csv", ".json": "json"}


def export_table(
    ledger: Ledger, table: str, path: Path, fmt: Literal["csv", "json"] | None = None
) -> int:
    """Write every row of ``table`` to ``path``; returns the number of rows.

    The format is ``fmt``, else the file suffix (``.csv`` or ``.json``).

    Raises:
        LedgerError: not an exportable table, a suffix that names no format (without
            ``fmt``), or the file cannot be written (the message names ``path``, never the
            temporary file).
    """
    kind = fmt or EXPORT_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        known = " or ".join(EXPORT_SUFFIXES)
        raise LedgerError(f"{path}: unknown extension {path.suffix!r} (use {known})")
    columns, rows = ledger.columns(table), ledger.rows(table)
    try:
        return _write(columns, rows, path, kind)
    except OSError as exc:
        raise LedgerError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def _write(columns: list[str], rows: list[dict[str, object]], path: Path, kind: str) -> int:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            if kind == "json":
                json.dump(rows, out, indent=2)
                out.write("\n")
            else:
                writer = csv.DictWriter(out, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(rows)
