"""``carbond submit``: one validated job line appended to the caller's queue file (the daemon
acts on it, so it works while the daemon is down), from ``--file`` and the flags; what it fills
in and warns about is :mod:`daemon.cli.submit_checks`, ``--file`` :mod:`daemon.cli.submit_file`.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from daemon.catalog import gpu_catalog
from daemon.cli.context import add_ledger_options, settings_from
from daemon.cli.output import print_json, printable, stderr_line
from daemon.cli.own_queue import append_own_line
from daemon.cli.submit_checks import resolve_program, submit_warnings, unread_duplicate, workdir
from daemon.cli.submit_file import name_file_fields, read_job_file
from daemon.cli.submit_health import unplanned_gpus
from daemon.errors import UsageError
from daemon.ledger import Ledger, LedgerError
from daemon.queue import new_job_id
from daemon.queue.job_request import JobRequest
from daemon.queue.line import parse_line
from daemon.queue.reasons import InvalidLineError
from daemon.reports.lines import user_name
from daemon.settings import Settings, config_path
from daemon.statedir import LEDGER_NAME

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
    """Add ``submit``."""
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


def _submit(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    record, text, from_file = _record(args)
    written = record.get("command")  # before resolving: the default name is the word written
    warnings = resolve_program(record)
    known = [r.name for r in settings.regions] or None
    try:
        parsed = parse_line(json.dumps(record), datetime.now(UTC), known, gpu_catalog(settings))
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
    warnings += submit_warnings(settings, request, datetime.now(UTC), config_path(args.config),
                                unplanned_gpus(settings))  # fmt: skip
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
