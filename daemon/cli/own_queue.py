"""``carbond submit`` and ``cancel`` append the caller's line to their own queue file. With
``[ledger] private = true`` (the same config the daemon loads) a file the caller creates is
0600: other users could otherwise read every queued job's argv and cwd there, which the
private ledger hides. An existing file's mode is left alone (a ``chmod`` would not stop a
reader who opened it before); a note on stderr says how to make it private.

The state dir's owner (the daemon's uid) appends to ``queue.jsonl``, unless other users can
write it or it has more than one hard link: the daemon rejects every line of it, so the line
goes to their spool file, and a note names the file and the fix ``carbond doctor`` gives."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from daemon.cli.output import note
from daemon.queue import QUEUE_NAME, append_submission
from daemon.queue.file_verdict import file_verdict, recreate_fix
from daemon.queue.files import readable_by_others
from daemon.settings import Settings

__all__ = ["append_own_line"]


def append_own_line(settings: Settings, record: dict[str, Any]) -> Path:
    """Append ``record`` to the caller's queue file (created 0600 when the ledger is
    private) and return it; note a ``queue.jsonl`` of the caller's gone around (writable by
    others or hard-linked) and, with a private ledger, a file other users can read."""
    private = settings.ledger.private
    uid = os.getuid()
    target = append_submission(
        settings.state_dir, uid, record, settings.queue.max_line_bytes, private=private
    )
    _note_bypassed_main(settings.state_dir / QUEUE_NAME, target, uid, private=private)
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


def _note_bypassed_main(main: Path, target: Path, uid: int, *, private: bool) -> None:
    """Note ``main`` (``queue.jsonl``) when it is ``uid``'s but the daemon rejects its lines
    (:func:`~daemon.queue.file_verdict.file_verdict`: writable by other users, else more than
    one hard link), so the line went to ``target`` instead
    (:func:`daemon.queue.files.submit_target`)."""
    if target == main:
        return
    try:
        st = os.stat(main, follow_symlinks=False)
    except OSError:
        return
    if st.st_uid != uid or not stat.S_ISREG(st.st_mode):
        return
    verdict = file_verdict(st)
    if verdict == "writable":
        what = f"is writable by other users (mode {stat.S_IMODE(st.st_mode):04o})"
    elif verdict == "linked":
        what = f"has {st.st_nlink} hard links"
    else:
        return
    note(
        f"{main} {what}: the daemon rejects every line of it (its owner cannot vouch for "
        f"them), so this line went to {target}; to fix it, " + recreate_fix(main, private=private)
    )
