"""``carbond jobs``: the ledger's jobs, paged, with the totals over every matching job, then
the jobs submitted that the daemon has not read yet (:mod:`daemon.cli.unread`), and with
``--state rejected`` the caller's queue lines it refused (:mod:`daemon.cli.rejected`). One job
is ``status`` (:mod:`daemon.cli.status_cmd`), a row of either :mod:`daemon.cli.job_rows`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.cli.context import add_ledger_options, open_ledger, settings_from
from daemon.cli.job_rows import SUBMITTED, job_row, short_reason, unread_row
from daemon.cli.output import clean_json, held_stdout, print_json, print_table, stderr_line
from daemon.cli.rejected import REJECTED, claimed_id, rejected_lines
from daemon.cli.unread import line_rules, unread_jobs
from daemon.errors import UsageError
from daemon.ledger import Ledger
from daemon.queue import REJECTED_NAME
from daemon.reports.lines import user_name
from daemon.reports.render import counted, fixed, unsigned_zero
from daemon.statedir import LEDGER_NAME
from daemon.states import STATES

__all__ = ["register"]

PAGE = 50  # rows `carbond jobs` shows without --limit


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``jobs``."""
    jobs = subparsers.add_parser(
        "jobs",
        help="list jobs from the ledger",
        description="List every user's jobs from the ledger, oldest first: a page of "
        f"{PAGE} with deadline, region, GPU, planned start, expected, measured and saved grams "
        "(gCO2e) and why a failed, cancelled or expired job ended so, then the counts per "
        "state and the totals over every matching job. Jobs "
        "submitted that the daemon has not read yet (it is down) follow, as 'submitted': "
        "yours, or everyone's for root, as `carbond status` finds them; a line without an id "
        "as '(new id) FILE:LINE' (the daemon gives it one when it reads it).",
    )
    add_ledger_options(jobs)
    jobs.add_argument(
        "--state", choices=(SUBMITTED, *STATES, REJECTED), action="append",
        help="only jobs in this state (repeatable: --state queued --state running); "
        "'submitted': not read by the daemon yet; 'rejected': your queue lines the daemon "
        "refused, with the reason",
    )  # fmt: skip
    jobs.add_argument(
        "--limit", type=int, default=None,
        help=f"at most this many (default: a page of {PAGE} with totals; --json: all)",
    )  # fmt: skip
    jobs.add_argument("--offset", type=int, default=0, help="skip this many first")
    jobs.set_defaults(func=_jobs)


def _open(args: argparse.Namespace) -> Ledger:
    return open_ledger(settings_from(args).state_dir)


_SQLITE_MAX_INT = 2**63 - 1


def _count(flag: str, value: int) -> int:
    """A ``--limit`` or ``--offset``: not negative; past SQLite's 64-bit integers it means
    as many as there are (all, or none past the end)."""
    if value < 0:
        raise UsageError(f"{flag} must not be negative")
    return min(value, _SQLITE_MAX_INT)


def _jobs(args: argparse.Namespace) -> int:
    limit = None if args.limit is None else _count("--limit", args.limit)
    offset = _count("--offset", args.offset)
    states = [s for s in args.state or () if s != REJECTED]
    if args.json and states and len(states) < len(args.state):  # two arrays: not one JSON
        raise UsageError("--json lists jobs or rejected lines, not both: ask for --state "
                         "rejected alone, and for the job states without it")  # fmt: skip
    if args.state and len(states) < len(args.state):
        _rejected(args, limit, offset, show_jobs=bool(states))
        if not states:
            return 0
    state_dir = settings_from(args).state_dir
    no_ledger = not (state_dir / LEDGER_NAME).is_file() and state_dir.is_dir()
    unread = _unread(args, None, states) if no_ledger else []  # no daemon has started yet
    if unread:  # else no ledger is the error _open gives
        stderr_line("carbond: note: no ledger yet: no daemon has read the queue; the jobs "
                    "listed are the submitted lines it will read")  # fmt: skip
    # the ledger is closed before stdout is written (a pager)
    with held_stdout(), nullcontext(None) if unread else _open(args) as ledger:
        unread = unread or _unread(args, ledger, states)
        if args.json:
            _write_json(ledger, states, limit, offset, unread)
        else:
            _print_page(ledger, states, PAGE if limit is None else limit, offset, unread)
    return 0


def _unread(
    args: argparse.Namespace, ledger: Ledger | None, states: Sequence[str]
) -> list[dict[str, Any]]:
    """The rows of the jobs submitted that the daemon has not read yet (``submitted``, after
    the ledger's: the daemon reads them next), where ``carbond status`` finds them; none when
    ``--state`` leaves them out. An id the ledger already has is not a job (the daemon drops
    its line); with no ledger (no daemon has started) every one is."""
    if states and SUBMITTED not in states:
        return []
    settings, now = settings_from(args), datetime.now(UTC)
    return [
        unread_row(job, now)
        for job in unread_jobs(settings.state_dir, os.getuid(), now=now, rules=line_rules(settings))
        if ledger is None
        or job.request.job_id is None  # a new id when read: never the ledger's
        or ledger.job_owner(job.request.job_id) is None
    ]


def _ledger_states(states: Sequence[str]) -> list[str] | None:
    """The ledger states ``--state`` asks for ([]: all), None for ``--state submitted`` alone."""
    kept = [s for s in states if s != SUBMITTED]
    return None if states and not kept else kept


# -- jobs: paging and streaming (constant memory whatever the ledger holds) ----------------

_JOB_COLUMNS = ("job_id", "name", "state", "user", "region", "gpu", "planned_start", "deadline",
                "expected_total_g", "measured_total_g", "saved_g", "reason")  # fmt: skip


def _print_page(
    ledger: Ledger | None,
    states: Sequence[str],
    limit: int,
    offset: int,
    unread: list[dict[str, Any]],
) -> None:
    """One page as a table, then the totals: how many match, by state, how to see more, and
    the grams over every matching job (the ledger's; ``unread``, the jobs not read yet, are
    listed after its jobs and counted as ``submitted``; no ledger: those alone, no grams)."""
    now = datetime.now(UTC)
    kept = None if ledger is None else _ledger_states(states)
    rows = (
        []
        if ledger is None or kept is None
        else [job_row(ledger, j, now) for j in ledger.iter_jobs(kept, limit, offset)]
    )
    counts = {} if ledger is None or kept is None else ledger.counts_by_state()
    shown = {s: n for s, n in counts.items() if not kept or s in kept}
    in_ledger = sum(shown.values())
    first = max(0, offset - in_ledger)
    rows += unread[first : first + limit - len(rows)]
    for row in rows:  # the table marks a missed deadline in its cell
        row["reason"] = short_reason(row["reason"])  # why it failed, ...: --json has it all
        if row["deadline_missed"]:
            row["deadline"] = f"{row['deadline']} (missed)"
        if row.get("newline_pending"):  # read once its line ends
            row["state"] = f"{row['state']} (no newline yet)"
        if row.get("held"):  # its file is read once its owner is known: "held: owner unknown"
            row["state"] = f"{row['state']} ({row['held'].partition(' (')[0]})"
        if row["job_id"] is None:  # an unread line without an id: where it is
            row["job_id"] = f"(new id) {Path(row['queue_file']).name}:{row['line_no']}"
    print_table("jobs", _JOB_COLUMNS, [[row[c] for c in _JOB_COLUMNS] for row in rows])
    if unread:
        shown[SUBMITTED] = len(unread)
    total = sum(shown.values())
    by_state = ", ".join(f"{s} {n:,}" for s, n in sorted(shown.items()))
    if rows:
        print(f"jobs {offset + 1:,}-{offset + len(rows):,} of {total:,} ({by_state or 'none'})")
    elif limit == 0:  # the totals only, as ``--json --limit 0`` gives no rows
        print(f"{counted(total, 'job')} ({by_state or 'none'}), none shown: --limit 0")
    elif total == 0:  # was 'no jobs from --offset 0: 0 in all (none)', no --offset given
        print(f"no {', '.join(states)} jobs" if states else "no jobs yet")
    else:  # an offset past the last job
        print(f"no jobs from --offset {offset:,}: {total:,} in all ({by_state or 'none'})")
    if limit and offset + len(rows) < total:
        print(f"more: --offset {offset + len(rows)} (--limit N for a bigger page, --json for all)")
    if ledger is not None and kept is not None:
        print(_grams_line(ledger.grams_totals(kept)))


def _write_json(
    ledger: Ledger | None,
    states: Sequence[str],
    limit: int | None,
    offset: int,
    unread: list[dict[str, Any]],
) -> None:
    """A JSON array written one job at a time (into :func:`held_stdout`'s file: no job list is
    held in memory), the ledger's jobs, then those not read yet (``unread``; no ledger: those
    alone)."""
    out, now = sys.stdout, datetime.now(UTC)
    kept = None if ledger is None else _ledger_states(states)
    separator, written = "[\n  ", 0
    in_ledger = 0
    if ledger is not None and kept is not None:
        for job in ledger.iter_jobs(kept, limit, offset):
            out.write(separator + json.dumps(clean_json(job_row(ledger, job, now)), default=str))
            separator, written = ",\n  ", written + 1
        in_ledger = sum(n for s, n in ledger.counts_by_state().items() if not kept or s in kept)
    first = max(0, offset - in_ledger)
    for row in unread[first : None if limit is None else first + limit - written]:
        out.write(separator + json.dumps(clean_json(row), default=str))
        separator = ",\n  "
    out.write("[]\n" if separator.startswith("[") else "\n]\n")
    out.flush()


def _grams_line(totals: dict[str, float]) -> str:
    """The totals under the table, over every job matching the states (not just those shown):
    the measured grams are those of the jobs that ran, and the jobs that ended without a run
    (rejected, expired, cancelled before their start) are counted apart, not left out."""
    jobs = "job" if totals["jobs"] == 1 else "jobs"
    return (
        f"total over {totals['jobs']:,.0f} {jobs}: expected {_grams(totals['expected_total_g'])} "
        f"g; measured {_grams(totals['measured_total_g'])} g over {totals['finished']:,.0f} "
        f"run, {totals['ended_without_run']:,.0f} ended without a run, saved "
        f"{_grams(totals['saved_g'])} g against running each at once (run-now)"
    )


_NOISE_G = 1e-6


def _grams(value: float) -> str:
    """A total of grams: from 1 g on to two decimals (``1,234.57``), below it to three
    significant digits (``0.0976``, ``0.000413``): short jobs weigh milligrams, which two
    decimals showed as ``0.00`` or ``0.01``."""
    if abs(value) < _NOISE_G or abs(value) >= 0.995:  # below a microgram: sums' float noise
        return unsigned_zero(f"{0.0 if abs(value) < _NOISE_G else value:,.2f}")
    return fixed(value, 3)  # not .3g: below 0.0001 g that wrote 4.13e-05


def _rejected(args: argparse.Namespace, limit: int | None, offset: int, *, show_jobs: bool) -> None:
    """The caller's queue lines the daemon refused (root: everyone's), paged as jobs are."""
    path = settings_from(args).state_dir / REJECTED_NAME
    rows = rejected_lines(path, os.getuid(), limit, offset)
    if args.json and not show_jobs:
        print_json(rows)
        return
    columns = ("rejected_at", "job_id", "user", "file", "line_no", "reason")
    table = [
        [r.get("rejected_at"), claimed_id(r), None if r.get("uid") is None else user_name(r["uid"]),
         r.get("file"), r.get("line_no"), r.get("reason")]
        for r in rows
    ]  # fmt: skip
    print_table(f"rejected lines ({path})", columns, table)
