"""``carbond submit`` and ``cancel`` append the caller's line to their own queue file. With
``[ledger] private = true`` (the same config the daemon loads) a file the caller creates is
0600: other users could otherwise read every queued job's argv and cwd there, which the
private ledger hides. An existing file's mode is left alone (a ``chmod`` would not stop a
reader who opened it before); a note on stderr says how to make it private."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from daemon.cli.output import note
from daemon.queue import append_submission
from daemon.queue.files import readable_by_others
from daemon.settings import Settings

__all__ = ["append_own_line"]


def append_own_line(settings: Settings, record: dict[str, Any]) -> Path:
    """Append ``record`` to the caller's queue file (created 0600 when the ledger is
    private) and return it; with a private ledger, note a file other users can read."""
    private = settings.ledger.private
    target = append_submission(
        settings.state_dir, os.getuid(), record, settings.queue.max_line_bytes, private=private
    )
    if private:
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except OSError:  # compacted away meanwhile: the new file keeps the old one's mode
            return target
        if readable_by_others(mode):
            note(
                f"{target} is readable by other users (mode {mode:04o}), though this carbond "
                f"keeps its ledger private: your queued jobs' argv and cwd show there; "
                f"`chmod 600 {target}` makes it private (a reader who opened it before keeps it)"
            )
    return target
