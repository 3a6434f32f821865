"""The lines of a Slurm listing (``squeue``, ``sacct``, ``scontrol``): where Slurm ends them,
which are data, and whether the answer was cut short inside its last one (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["LOST", "cut_last", "cut_why", "data_lines"]

LOST = "row"  # how a lost row's ``unreadable`` begins (sacct's too)


def cut_last(stdout: str, lines: list[str]) -> bool:
    """Whether ``stdout`` (a Slurm listing, its :func:`data_lines` ``lines``) ends inside
    its last line: Slurm ends every line with a newline, so one without it was cut short,
    maybe inside its last field, with every field there."""
    ended = stdout.endswith(("\n", "\r"))
    return bool(lines) and not ended and _lines(stdout)[-1] == lines[-1]


def cut_why(command: str, stdout: str, field: str, line: str) -> str:
    """How a last line :func:`cut_last` found is named in its lost row's ``unreadable``."""
    return (f"{LOST} cut short: {command}'s answer ends inside its line "
            f"{len(_lines(stdout))}, with no end of line, so its last field ({field}) "
            f"may be cut: {line[:200]!r}")  # fmt: skip


_LINE_END = re.compile(r"\r\n|\r|\n")


def _lines(stdout: str) -> list[str]:
    """``stdout``'s lines, split where Slurm ends them only: ``str.splitlines`` also splits
    at form feeds, ``\\x1c``-``\\x1e``, ``\\x85`` and U+2028/9, which free text (a node's
    ``Reason``) may hold, and one line read as two is a lost row or a listing refused."""
    lines = _LINE_END.split(stdout)
    return lines[:-1] if lines[-1] == "" else lines


def data_lines(stdout: str) -> Iterator[str]:
    """The non-blank lines of a Slurm listing, without the ``CLUSTER: name`` banners ``-M``
    adds."""
    for line in _lines(stdout):
        if line.strip() and not line.startswith("CLUSTER:"):
            yield line
