"""The one rule for whether a queue file's owner can vouch for its lines: not when other users
can write it, nor when it has more than one hard link (checked in that order, so a file that is
both is named writable). The daemon's attribution, ``carbond submit``'s choice of file and
note, and ``carbond doctor``'s queue line all judge by :func:`file_verdict`; both verdicts
have one fix, :func:`recreate_fix` for the main queue."""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path
from typing import Literal

__all__ = ["Verdict", "file_verdict", "hard_linked", "recreate_fix", "writable_by_others"]

Verdict = Literal["writable", "linked"]
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def file_verdict(st: os.stat_result) -> Verdict | None:
    """Why the owner of a queue file (``st``) cannot vouch for its lines: ``"writable"``
    (:func:`writable_by_others`), else ``"linked"`` (:func:`hard_linked`); None when it can."""
    if writable_by_others(st.st_mode):
        return "writable"
    if hard_linked(st):
        return "linked"
    return None


def writable_by_others(mode: int) -> bool:
    """Whether a queue file of ``mode`` (``st_mode``) is writable by its group or others: its
    lines cannot be attributed to its owner (:func:`daemon.queue.files.attribution` rejects
    them), and a ``chmod`` back does not vouch for them either (a descriptor opened meanwhile
    stays writable)."""
    return bool(mode & _OTHERS_WRITE)


def hard_linked(st: os.stat_result) -> bool:
    """Whether a queue file (``st``) has more than one hard link: its owner cannot vouch for its
    lines (:func:`daemon.queue.files.attribution` rejects them): the other name may be anyone's
    way in to it."""
    return st.st_nlink > 1


def recreate_fix(queue: Path, *, private: bool) -> str:
    """The fix for a main queue the daemon rejects every line of: a new file, which ``carbond
    run`` creates (0600 while the ledger is private, which makes it private too)."""
    return (
        f"the daemon stopped, its owner moves it away (e.g. `mv {shlex.quote(str(queue))} "
        "~/old-queue.jsonl`) and starts the daemon: `carbond run` creates a new one (mode "
        f"{'0600' if private else '0644'}); lines of it not yet read go with it, to be "
        "submitted again"
    )
