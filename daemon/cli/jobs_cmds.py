"""``carbond submit``, ``jobs`` and ``cancel``: the user's side of the queue file and the ledger
(``status`` is :mod:`daemon.cli.status_cmd`, ``export`` :mod:`daemon.cli.export_cmd`).

``submit`` and ``cancel`` only append a line to the queue (the daemon acts on it), so they work
while the daemon is down; ``jobs`` reads the ledger.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.cli.cancel_cmd import cancel_job
from daemon.cli.context import add_ledger_options, open_ledger, settings_from
from daemon.cli.job_rows import SUBMITTED, job_row, unread_row
from daemon.cli.output import (
    clean_json,
    held_stdout,
    print_json,
    print_table,
    printable,
    stderr_line,
)
from daemon.cli.own_queue import append_own_line
from daemon.cli.rejected import REJECTED, claimed_id, rejected_lines
from daemon.cli.submit_checks import resolve_program, submit_warnings, unread_duplicate, workdir
from daemon.cli.submit_file import name_file_fields, read_job_file
from daemon.cli.unread import line_rules, unread_jobs
from daemon.errors import UsageError
from daemon.ledger import Ledger, LedgerError
from daemon.queue import REJECTED_NAME, new_job_id
from daemon.queue.job_request import JobRequest
from daemon.queue.line import parse_line
from daemon.queue.reasons import InvalidLineError
from daemon.reports.lines import user_name
from daemon.reports.render import unsigned_zero
from daemon.settings import Settings, config_path
from daemon.statedir import LEDGER_NAME
from daemon.states import STATES

__all__ = ["register"]

# (flag, queue field, type, help)
_FIELDS: tuple[tuple[str, str, type, str], ...] = (
    ("--id", "id", str, "client-chosen id (default: assigned; an id the ledger already has is "
     "refused, exit 2)"),
    ("--name", "name", str, "a label (default: --id if given, else the program)"),
    ("--model", "model", str, "catalog model name or alias (or give --params-b)"),
    ("--params-b", "params_b", float, "an unknown model's size in billions of parameters"),
    ("--input-tokens", "input_tokens", int, "prompt tokens per request (mean, default 128)"),
    ("--output-tokens", "output_tokens", int, "output tokens per request (mean, default 150)"),
    ("--requests", "requests", int, "number of requests (default: one batch)"),
    ("--batch-size", "batch_size", int, "requests per batch (default 1)"),
    ("--tensor-parallel", "tensor_parallel", int, "GPUs per job, 1 to 64 (default 1)"),
    ("--deadline", "deadline", str, "latest end: RFC 3339 with offset, or from now as +8h, "
     "+1d12h, +30m, +90s (default: none)"),
    ("--min-gpu-memory-gb", "min_gpu_memory_gb", float,
     "smallest acceptable GPU memory in GB (default 0)"),
    ("--priority", "priority", int, "-1000 to 1000, higher is planned first (default 0)"),
    ("--precision", "precision", str, "weight precision: fp32, fp16, bf16, fp8, int8, int4 "
     "(default fp16)"),
    ("--runtime", "runtime", str, "serving runtime profile: hf-eager, vllm, vllm-v0 "
     "(default hf-eager)"),
)  # fmt: skip
_LISTS = (
    ("--region", "regions", "a configured region the job may run in (repeatable; default: any)"),
    ("--gpu-type", "gpu_types", "a catalog GPU type the job may run on (repeatable; default: any)"),
    ("--tag", "tags", "a free-form label (repeatable)"),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``submit``, ``jobs`` and ``cancel``."""
    submit = subparsers.add_parser(
        "submit",
        help="append a job to the queue",
        description="Append one validated job line to the queue; the command after -- is run "
        "without a shell. Fields come from --file (a JSON object; - for stdin), then flags.",
    )
    add_ledger_options(submit)
    submit.add_argument("--file", metavar="PATH", help="job as a JSON object (- for stdin)")
    submit.add_argument(
        "--cwd", metavar="DIR", help="directory the job starts in (default: where submit runs)"
    )
    for flag, field, kind, text in _FIELDS:
        submit.add_argument(flag, dest=field, type=kind, help=text)
    for flag, field, text in _LISTS:
        submit.add_argument(flag, dest=field, action="append", help=text)
    submit.add_argument("command", nargs=argparse.REMAINDER, help="-- argv of the job")
    submit.set_defaults(func=_submit)

    jobs = subparsers.add_parser(
        "jobs",
        help="list jobs from the ledger",
        description="List every user's jobs from the ledger, oldest first: a page of "
        f"{PAGE} with deadline, region, GPU, planned start, expected, measured and saved grams "
        "(gCO2e), then the counts per state and the totals over every matching job. Jobs "
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

    cancel = subparsers.add_parser(
        "cancel",
        help="ask the daemon to cancel a job of yours",
        description="Append a cancel line for a job of yours (root: anyone's) to the queue; "
        "the daemon acts on it: a waiting job is cancelled before it starts, a running one "
        "gets SIGTERM, then SIGKILL after executors.local.grace_s (default 30 s; Slurm: "
        "scancel). Works while the daemon is down, also for a job it has not read yet.",
    )
    add_ledger_options(cancel)
    cancel.add_argument("job_id", metavar="ID", help="the job's id (carbond jobs)")
    cancel.set_defaults(func=cancel_job)


# -- submit ---------------------------------------------------------------------------------


def _submit(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    record, text, from_file = _record(args)
    written = record.get("command")  # before resolving: the default name is the word written
    warnings = resolve_program(record)
    known = [r.name for r in settings.regions] or None
    try:
        parsed = parse_line(json.dumps(record), datetime.now(UTC), known)
    except InvalidLineError as exc:
        if from_file:
            raise UsageError(
                f"invalid job: {name_file_fields(str(exc), args.file, text, from_file)}"
            ) from exc
        raise UsageError(f"invalid job: {exc}") from exc
    if not isinstance(parsed, JobRequest):
        raise UsageError("use `carbond cancel ID` to cancel a job")
    if record.get("name") is None and not parsed.job_id and isinstance(written, list):
        # as a raw line's: `python`, not the path it resolved to (which the job runs)
        parsed = replace(parsed, name=written[0])
    if parsed.job_id:
        _refuse_existing_id(settings, parsed.job_id, os.getuid())
    request = parsed if parsed.job_id else parsed.with_id(new_job_id())
    if parsed.job_id:
        warnings += unread_duplicate(settings, parsed.job_id, os.getuid(), datetime.now(UTC))
    warnings += submit_warnings(settings, request, datetime.now(UTC), config_path(args.config))
    target = append_own_line(settings, request.to_json())
    if args.json:
        print_json({"job_id": request.job_id, "queue_file": str(target),
                    "deadline": request.to_json()["deadline"], "warnings": warnings})  # fmt: skip
    else:
        print(f"submitted {request.job_id} to {target}")
    for warning in warnings:
        stderr_line(f"carbond: warning: {printable(warning)}")
    return 0


def _record(args: argparse.Namespace) -> tuple[dict[str, Any], str, set[str]]:
    """The job line ``submit``'s ``--file`` and flags make (the flags on top), the file's
    text, and the fields still from the file (named with its lines in an error)."""
    record, text = read_job_file(args.file) if args.file else ({}, "")
    from_file = set(record)  # less the fields a flag replaces, below
    for _, field, _, _ in _FIELDS:
        if getattr(args, field) is not None:
            record[field] = getattr(args, field)
            from_file.discard(field)
    for _, field, _ in _LISTS:
        if getattr(args, field):
            record[field] = getattr(args, field)
            from_file.discard(field)
    argv = args.command[1:] if args.command[:1] == ["--"] else args.command
    if argv:
        record["command"] = argv
        from_file.discard("command")
    record.pop("user", None)
    record["cwd"] = workdir(args.cwd, record.get("cwd"))
    return record, text, from_file


def _refuse_existing_id(settings: Settings, job_id: str, uid: int) -> None:
    """Refuse a client-chosen id the ledger already has (a line with it would be rejected, or
    dropped as a duplicate). Without a readable ledger there is nothing to compare with."""
    try:
        with Ledger.open_readonly(settings.state_dir / LEDGER_NAME) as ledger:
            owner = ledger.job_owner(job_id)
            state = ledger.job_state(job_id) if owner is not None else None
    except LedgerError:
        return
    if owner is None:
        return
    if owner == uid:
        raise UsageError(f"job id {job_id!r} already exists: it is yours ({state}); see "
                         f"`carbond status {job_id}`, or choose another --id")  # fmt: skip
    raise UsageError(
        f"job id {job_id!r} already exists and belongs to {_who(owner)}; choose another --id"
    )


def _who(uid: int) -> str:
    name = user_name(uid)
    return f"uid {uid}" if name == str(uid) else f"{name} (uid {uid})"


# -- jobs ------------------------------------------------------------------------------------


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

PAGE = 50  # rows `carbond jobs` shows without --limit
_JOB_COLUMNS = ("job_id", "name", "state", "user", "region", "gpu", "planned_start", "deadline",
                "expected_total_g", "measured_total_g", "saved_g")  # fmt: skip


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
        if row["deadline_missed"]:
            row["deadline"] = f"{row['deadline']} (missed)"
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
        print(f"{total:,} jobs ({by_state or 'none'}), none shown: --limit 0")
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
    return f"{value:.3g}"


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
