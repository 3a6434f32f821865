"""Who runs a process, from ``/proc/PID/status`` (its owner on disk says less: a process that
made itself non-dumpable has a root-owned ``/proc/PID``, whoever runs it)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

__all__ = ["ProcessUids", "process_uids"]


class ProcessUids(NamedTuple):
    """A process's real and effective uid."""

    real: int
    effective: int


def process_uids(pid: int) -> ProcessUids | None:
    """Process ``pid``'s real and effective uid; None when it is gone (or ``/proc`` lacks the
    line)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in status.splitlines():
        fields = line.split()
        if fields[:1] == ["Uid:"] and len(fields) > 2:
            return ProcessUids(int(fields[1]), int(fields[2]))
    return None
