"""Named crash points for the kill-point harness: ``CARBOND_KILL_AT=<point>[:<nth>]``.

The daemon calls :func:`reached` at the moments a crash is most dangerous (mid-ingestion,
between a ledger write and its commit, after a launch before its handle is recorded, ...). With
``CARBOND_KILL_AT`` unset, :func:`reached` returns at once (one global compared with None); set
to a point's name, the process sends itself SIGKILL the ``nth`` time (default 1) it reaches
that point, exactly as ``kill -9`` would, with no ``finally``, ``atexit`` or flush running.

The variable is read once, when this module is first imported (at start-up). The points are
listed in :data:`POINTS`; the kill harness (``tests/daemon/killharness.py``, ``make
kill-harness``) kills the real ``carbond run`` at them and at random moments.
"""

from __future__ import annotations

import os
import signal
from typing import Final

__all__ = ["ENV", "POINTS", "reached"]

ENV: Final = "CARBOND_KILL_AT"

POINTS: Final = (
    "migration",  # a schema migration's statements ran, its COMMIT did not
    "ingest_line",  # mid-batch: some lines of a file handled inside the open transaction
    "ingest_commit",  # job rows and rejections written, the offset not yet committed
    "ingest_done",  # a file's batch committed, the next file not started
    "plan_decided",  # a decision recorded, its job not yet dispatched
    "dispatch_launch",  # the write-ahead `running` row committed, the executor not called
    "dispatch_handle",  # the job launched, its handle not yet recorded
    "cancel_sent",  # a running job's executor asked to stop it, recorded; only this daemon asked
    "reconcile_polled",  # the executor reported the ended jobs, none recorded yet
    "job_exit",  # one job's end observed and measured, its outcome not yet committed
    "job_exit_done",  # one job's outcome committed
    "gpu_lost_stop",  # a lost GPU's run being stopped (recorded, SIGTERM sent), its end not yet
    "compact_begun",  # a compaction recorded in the ledger, the queue file not yet renamed
    "compact_renamed",  # the queue file renamed into queue.retired/, no replacement linked
    "compact_linked",  # the replacement linked, the new offsets not yet committed
    "recalibration_checkpoint",  # a recalibration checkpoint written, not yet committed
    "hold_handed",  # a planned job handed to a reserving executor (Slurm), its token not recorded
)


def _target(value: str | None) -> tuple[str, int] | None:
    """``(point, nth)`` from the variable's value; None when unset or empty.

    Raises:
        ValueError: an unknown point or an ``nth`` that is not a positive integer.
    """
    if not value:
        return None
    name, _, nth = value.partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENV}={value!r}: unknown point {name!r} (known: {', '.join(POINTS)})")
    count = int(nth) if nth.isdigit() else 0 if nth else 1
    if count < 1:
        raise ValueError(f"{ENV}={value!r}: nth must be 1 or more")
    return name, count


# The one process-wide setting of this module, fixed at import (start-up); tests of this module
# call _target directly.
_TARGET: Final = _target(os.environ.get(ENV))
_seen: dict[str, int] = {}


def reached(name: str) -> None:
    """Mark that the daemon reached point ``name``; SIGKILL ourselves if it is the target."""
    if _TARGET is None:
        return
    if name != _TARGET[0]:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] >= _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)
