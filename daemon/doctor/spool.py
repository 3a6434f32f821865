"""``carbond doctor``'s ``queue`` line on users' spool files (``queue.d/*.jsonl``): those the
daemon ignores (planted under another user's name, or not regular files), those other users
can write and those with more than one hard link (the daemon rejects their lines; their owners
must recreate them) and, while
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
from daemon.queue.file_verdict import file_verdict
from daemon.queue.files import readable_by_others, spool_name_problem

__all__ = ["owner_name", "spool_problems"]

SHOWN = 3  # files named one by one; the rest are counted


def spool_problems(spool: Path, *, private: bool) -> list[str]:
    """Spool files the daemon ignores: planted under another user's name, or not files; one
    problem for those other users can write (:func:`_writable_problem`), one for those with
    more than one hard link (:func:`_linked_problem`); and, when
    ``private``, one for those it reads that other users can read too, but not write
    (:func:`_readable_problem`). Never follows a symlink."""
    if not spool.is_dir():
        return []
    problems = []
    writable: list[tuple[Path, os.stat_result]] = []
    linked: list[tuple[Path, os.stat_result]] = []
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
        elif (verdict := file_verdict(st)) == "writable":  # moved away: a chmod would not do
            writable.append((path, st))
        elif verdict == "linked":  # the daemon's order: a writable one is named as writable
            linked.append((path, st))
        elif readable_by_others(st.st_mode):
            readable.append((path, st))
    if (found := _writable_problem(spool, writable)) is not None:
        problems.append(found)
    if (found := _linked_problem(spool, linked)) is not None:
        problems.append(found)
    if private and (found := _readable_problem(spool, readable)) is not None:
        problems.append(found)
    return problems


def _writable_problem(spool: Path, writable: list[tuple[Path, os.stat_result]]) -> str | None:
    """One problem naming the ``writable`` spool files (path and ``lstat``) of ``spool`` as
    :func:`_readable_problem` does, with the fix: each owner moves theirs away and submits
    again (a ``chmod`` back is not one: a descriptor opened meanwhile stays writable, and the
    daemon would read the lines written through it as the owner's); None when there are none."""
    return _recreate_problem(
        spool, writable, "-perm /022", "writable by other users",
        "every line of such a file, and a `chmod` back does not make it safe (whoever opened it "
        "meanwhile can still write lines read as its owner's): its owner moves it away",
    )  # fmt: skip


def _linked_problem(spool: Path, linked: list[tuple[Path, os.stat_result]]) -> str | None:
    """One problem naming the ``linked`` spool files (path and ``lstat``) of ``spool``, each
    with its owner, mode and link count, with the fix: its owner moves it away and submits
    again, which creates a new file of one link; None when there are none."""
    return _recreate_problem(
        spool, linked, "-links +1", "with more than one hard link",
        "every line of such a file (its owner cannot vouch for them): its owner moves it away",
        links=True,
    )  # fmt: skip


def _recreate_problem(
    spool: Path,
    files: list[tuple[Path, os.stat_result]],
    find_test: str,
    what: str,
    rejects: str,
    *,
    links: bool = False,
) -> str | None:
    """One problem naming ``files`` (the spool files ``what``, found again by ``find``'s
    ``find_test``), the daemon rejecting ``rejects``, and the fix: each owner moves theirs
    away and submits again, which creates a new file; None when there are none."""
    if not files:
        return None
    shown = _shown(files, links=links)
    if len(files) > SHOWN:
        which = (f" (`find {shlex.quote(str(spool))} -type f -name '*.jsonl' {find_test}` "
                 "lists them, as root)")  # fmt: skip
    else:
        which = ""
    first = shlex.quote(str(files[0][0]))
    return (
        f"{len(files)} spool file(s) {what}: {shown}; the daemon rejects {rejects} (e.g. "
        f"`mv {first} ~/old-spool.jsonl`) and submits again, which creates a new file{which}"
    )


def _shown(files: list[tuple[Path, os.stat_result]], *, links: bool = False) -> str:
    """The first :data:`SHOWN` of ``files``, each with its owner and mode (and, with
    ``links``, its link count), and how many more."""
    shown = ", ".join(
        f"{SPOOL_DIR}/{path.name} (owner {owner_name(st.st_uid)}, "
        f"mode {stat.S_IMODE(st.st_mode):04o}" + (f", {st.st_nlink} links)" if links else ")")
        for path, st in files[:SHOWN]
    )
    more = len(files) - SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _readable_problem(spool: Path, readable: list[tuple[Path, os.stat_result]]) -> str | None:
    """One problem naming the ``readable`` spool files (path and ``lstat``) of ``spool``: the
    first :data:`SHOWN`, each with its owner and mode, and how many more, with the ``chmod``
    that makes them private; None when there are none."""
    if not readable:
        return None
    shown = _shown(readable)
    if len(readable) > SHOWN:
        fix = (f"`find {shlex.quote(str(spool))} -type f -name '*.jsonl' -perm /044 ! -perm /022 "
               "-exec chmod 600 {} +` (as root) makes them private")  # fmt: skip
    else:
        fix = f"`chmod 600 {' '.join(shlex.quote(str(p)) for p, _ in readable)}` makes " + (
            "it private" if len(readable) == 1 else "them private"
        )
    return (
        f"{len(readable)} spool file(s) readable by other users, though the ledger is "
        f"private: {shown}; every job queued there shows its argv and cwd; {fix} (a reader "
        "who opened one before keeps it)"
    )


def owner_name(uid: int) -> str:
    """``uid 1000 (alice)``, or ``uid 1000`` with no passwd entry."""
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"
