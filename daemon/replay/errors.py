"""Errors raised by :mod:`daemon.replay` (all under :class:`daemon.errors.DaemonError`)."""

from __future__ import annotations

from os import PathLike

from daemon.errors import DaemonError, UsageError
from forecasts.errors import LocatedError

__all__ = ["ReplayError", "ReplayInputError"]


class ReplayError(DaemonError):
    """A replay could not run (the message names the file, line or field)."""


class ReplayInputError(LocatedError, ReplayError, UsageError):
    """A bad replay input: a trace line, a cluster file field, an option; exit code 2.

    The message is ``FILE:LINE: PROBLEM`` (``FILE: PROBLEM`` without a line, ``PROBLEM``
    without a file), composed from the parts, which the error keeps: ``file`` (str), ``line``
    (1-based), ``field`` (a trace's column or JSON field, a cluster file's dotted key, an
    option as typed, ``--slack``), each None where not known. ``problem`` names the field in
    words where it has one (``ContextTokens is not an integer: 'x'``). ``zone`` and ``job_id``
    name the intensity zone or the ledger job the problem is about, where it is one (not part
    of the message, which names them in words)."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | PathLike[str] | None = None,
        line: int | None = None,
        field: str | None = None,
        zone: str | None = None,
        job_id: str | None = None,
    ) -> None:
        self.zone = zone
        self.job_id = job_id
        super().__init__(problem, file=file, line=line, field=field)
