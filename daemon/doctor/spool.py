"""``carbond doctor``'s ``queue`` line on users' spool files (``queue.d/*.jsonl``): those the
daemon ignores (planted under another user's name, or not regular files) and, while
``[ledger] private = true``, those other users can read: each holds the argv and cwd of every
job its owner queued since its last compaction, which the private ledger hides. ``carbond
submit`` creates them 0600 then, but one made before the ledger was private keeps its mode."""

from __future__ import annotations

import os
import pwd
import shlex
import stat
from pathlib import Path

from daemon.queue import SPOOL_DIR
from daemon.queue.files import spool_name_problem

__all__ = ["spool_problems"]

_READABLE_BY_OTHERS = stat.S_IRGRP | stat.S_IROTH
SHOWN = 3  # files named one by one; the rest are counted


def spool_problems(spool: Path, *, private: bool) -> list[str]:
    """Spool files the daemon ignores: planted under another user's name, or not files; and,
    when ``private``, one problem for those it reads that other users can read too
    (:func:`_readable_problem`). Never follows a symlink."""
    if not spool.is_dir():
        return []
    problems = []
    readable: list[tuple[Path, os.stat_result]] = []
    for path in sorted(spool.glob("*.jsonl")):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        rel = f"{SPOOL_DIR}/{path.name}"
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{rel} is not a regular file: ignored")
        elif (problem := spool_name_problem(rel, st.st_uid)) is not None:
            problems.append(problem)
        elif st.st_mode & _READABLE_BY_OTHERS:
            readable.append((path, st))
    if private and (found := _readable_problem(spool, readable)) is not None:
        problems.append(found)
    return problems


def _readable_problem(spool: Path, readable: list[tuple[Path, os.stat_result]]) -> str | None:
    """One problem naming the ``readable`` spool files (path and ``lstat``) of ``spool``: the
    first :data:`SHOWN`, each with its owner and mode, and how many more, with the ``chmod``
    that makes them private; None when there are none."""
    if not readable:
        return None
    shown = ", ".join(
        f"{SPOOL_DIR}/{path.name} (owner {_owner(st.st_uid)}, mode {stat.S_IMODE(st.st_mode):04o})"
        for path, st in readable[:SHOWN]
    )
    more = len(readable) - SHOWN
    if more > 0:
        shown += f" and {more} more"
        fix = (f"`find {shlex.quote(str(spool))} -type f -name '*.jsonl' -perm /044 -exec "
               "chmod 600 {} +` (as root) makes them private")  # fmt: skip
    else:
        fix = f"`chmod 600 {' '.join(shlex.quote(str(p)) for p, _ in readable)}` makes " + (
            "it private" if len(readable) == 1 else "them private"
        )
    return (
        f"{len(readable)} spool file(s) readable by other users, though the ledger is "
        f"private: {shown}; every job queued there shows its argv and cwd; {fix} (a reader "
        "who opened one before keeps it)"
    )


def _owner(uid: int) -> str:
    """``uid 1000 (alice)``, or ``uid 1000`` with no passwd entry."""
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"
