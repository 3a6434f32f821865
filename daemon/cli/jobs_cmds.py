"""``carbond submit``, ``jobs``, ``status``, ``cancel`` and ``export``: the user's side of the
queue file and the ledger.

``submit`` and ``cancel`` only append a line to the queue (the daemon acts on it), so they work
while the daemon is down; ``jobs``, ``status`` and ``export`` read the ledger.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.cli.output import print_json, print_table
from daemon.cli.submit_checks import submit_warnings
from daemon.errors import UsageError
from daemon.executors import jobfiles
from daemon.executors.workdir import workdir_problem
from daemon.ledger import (
    EXPORTABLE,
    JobRecord,
    Ledger,
    LedgerError,
    UnknownJobError,
    export_table,
)
from daemon.ledger.export import EXPORT_SUFFIXES
from daemon.queue import REJECTED_NAME, append_submission, new_job_id
from daemon.queue.files import rejected_lines
from daemon.queue.line import InvalidLineError, JobRequest, parse_line
from daemon.settings import Settings, load_settings
from daemon.states import FINAL_STATES, STATES

__all__ = ["register"]

# (flag, queue field, type, help)
_FIELDS: tuple[tuple[str, str, type, str], ...] = (
    ("--id", "id", str, "client-chosen id (an id the ledger already has is refused, exit 2)"),
    ("--name", "name", str, "a label"),
    ("--model", "model", str, "catalog model name (or give --params-b)"),
    ("--params-b", "params_b", float, "model size in billions of parameters"),
    ("--input-tokens", "input_tokens", int, "prompt tokens per request (mean)"),
    ("--output-tokens", "output_tokens", int, "output tokens per request (mean)"),
    ("--requests", "requests", int, "number of requests"),
    ("--batch-size", "batch_size", int, "requests per batch"),
    ("--tensor-parallel", "tensor_parallel", int, "GPUs per job"),
    ("--deadline", "deadline", str, "latest end: RFC 3339, or relative like +8h"),
    ("--min-gpu-memory-gb", "min_gpu_memory_gb", float, "smallest acceptable GPU memory"),
    ("--priority", "priority", int, "higher runs first"),
    ("--precision", "precision", str, "weight precision (fp16, bf16, int8, ...)"),
    ("--runtime", "runtime", str, "serving runtime profile (hf-eager, vllm)"),
)
_LISTS = (("--region", "regions"), ("--gpu-type", "gpu_types"), ("--tag", "tags"))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``submit``, ``jobs``, ``status``, ``cancel`` and ``export``."""
    submit = subparsers.add_parser(
        "submit",
        help="append a job to the queue",
        description="Append one validated job line to the queue; the command after -- is run "
        "without a shell. Fields come from --file (a JSON object; - for stdin), then flags.",
    )
    _common(submit)
    submit.add_argument("--file", metavar="PATH", help="job as a JSON object (- for stdin)")
    submit.add_argument(
        "--cwd", metavar="DIR", help="directory the job starts in (default: where submit runs)"
    )
    for flag, field, kind, text in _FIELDS:
        submit.add_argument(flag, dest=field, type=kind, help=text)
    for flag, field in _LISTS:
        submit.add_argument(flag, dest=field, action="append", help="repeatable")
    submit.add_argument("command", nargs=argparse.REMAINDER, help="-- argv of the job")
    submit.set_defaults(func=_submit)

    jobs = subparsers.add_parser("jobs", help="list jobs from the ledger")
    _common(jobs)
    jobs.add_argument(
        "--state", choices=(*STATES, REJECTED), action="append",
        help="only these states; 'rejected': your queue lines the daemon refused, with the reason",
    )  # fmt: skip
    jobs.add_argument("--limit", type=int, default=None, help="at most this many")
    jobs.set_defaults(func=_jobs)

    status = subparsers.add_parser("status", help="one job: decision, alternatives, outcome")
    _common(status)
    status.add_argument("job_id", metavar="ID")
    status.set_defaults(func=_status)

    cancel = subparsers.add_parser("cancel", help="ask the daemon to cancel a job of yours")
    _common(cancel)
    cancel.add_argument("job_id", metavar="ID")
    cancel.set_defaults(func=_cancel)

    export = subparsers.add_parser(
        "export",
        help="write a ledger table as CSV or JSON, or finished jobs as CodeCarbon emissions.csv",
        description="carbond export TABLE FILE writes a ledger table (format from --format or "
        "the suffix); carbond export --format codecarbon FILE writes every finished job as a "
        "row of CodeCarbon's emissions.csv.",
    )
    _common(export)
    export.add_argument("table", nargs="?", choices=EXPORTABLE, help="ledger table")
    export.add_argument("output", type=Path, help="file to write (.csv or .json)")
    export.add_argument("--format", dest="fmt", choices=("csv", "json", "codecarbon"),
                        help="default: from the file suffix")  # fmt: skip
    export.set_defaults(func=_export)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML config (default $CARBOND_CONFIG)")
    parser.add_argument("--state-dir", type=Path, help="override state_dir")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.state_dir is not None:
        overrides["state_dir"] = args.state_dir
    return load_settings(args.config, **overrides)


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


# -- submit ---------------------------------------------------------------------------------


def _submit(args: argparse.Namespace) -> int:
    settings = _settings(args)
    record = _read_file(args.file) if args.file else {}
    for _, field, _, _ in _FIELDS:
        if getattr(args, field) is not None:
            record[field] = getattr(args, field)
    for _, field in _LISTS:
        if getattr(args, field):
            record[field] = getattr(args, field)
    argv = args.command[1:] if args.command[:1] == ["--"] else args.command
    if argv:
        record["command"] = argv
    record.pop("user", None)
    record["cwd"] = _workdir(args.cwd, record.get("cwd"))
    warnings = _resolve_program(record)
    known = [r.name for r in settings.regions] or None
    try:
        parsed = parse_line(json.dumps(record), datetime.now(UTC), known)
    except InvalidLineError as exc:
        raise UsageError(f"invalid job: {exc}") from exc
    if not isinstance(parsed, JobRequest):
        raise UsageError("use `carbond cancel ID` to cancel a job")
    if parsed.job_id:
        _refuse_existing_id(settings, parsed.job_id, os.getuid())
    request = parsed if parsed.job_id else parsed.with_id(new_job_id())
    warnings += submit_warnings(settings, request, datetime.now(UTC))
    target = append_submission(
        settings.state_dir, os.getuid(), request.to_json(), settings.queue.max_line_bytes
    )
    if args.json:
        print_json({"job_id": request.job_id, "queue_file": str(target),
                    "deadline": request.to_json()["deadline"], "warnings": warnings})  # fmt: skip
    else:
        print(f"submitted {request.job_id} to {target}")
    for warning in warnings:
        print(f"carbond: warning: {warning}", file=sys.stderr)
    return 0


def _refuse_existing_id(settings: Settings, job_id: str, uid: int) -> None:
    """Refuse a client-chosen id the ledger already has (a line with it would be rejected, or
    dropped as a duplicate). Without a readable ledger there is nothing to compare with."""
    try:
        with Ledger.open_readonly(settings.state_dir / "ledger.db") as ledger:
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
    name = _user(uid)
    return f"uid {uid}" if name == str(uid) else f"{name} (uid {uid})"


def _resolve_program(record: dict[str, Any]) -> list[str]:
    """Replace a bare program name (``python``) in ``record["command"]`` by its path on the
    caller's ``PATH``, as their shell would run it: the job's own ``PATH`` is a fixed system
    one, so ``python`` from an activated venv would otherwise be another interpreter, or none.
    Returns the warnings (a name not found is kept)."""
    argv = record.get("command")
    if not isinstance(argv, list) or not argv or not isinstance(argv[0], str):
        return []  # validation names the problem
    program = argv[0]
    if not program or "/" in program:
        return []
    found = shutil.which(program)
    if found is None:
        return [f"{program!r} is not on your PATH; the job looks for it on "
                f"{jobfiles.DEFAULT_PATH}"]  # fmt: skip
    record["command"] = [os.path.abspath(found), *argv[1:]]
    return []


def _workdir(flag: str | None, from_file: Any) -> Any:
    """The job's working directory: ``--cwd``, else the file's ``cwd``, else where submit
    runs; absolute, and one the caller can enter as the job will (primary group only).

    Raises:
        UsageError: the caller cannot start a job there.
    """
    if flag is None and from_file is not None:
        return from_file  # validated with the rest of the line
    path = os.path.abspath(flag) if flag is not None else os.getcwd()
    if (problem := workdir_problem(path, os.getuid(), os.getgid())) is not None:
        where = "--cwd" if flag is not None else "the current directory (the default --cwd)"
        raise UsageError(f"{where}: {problem}")
    return path


def _read_file(name: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{name}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{name}: not JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{name}: a job is a JSON object")
    return data


# -- jobs, status ---------------------------------------------------------------------------


def _open(args: argparse.Namespace) -> Ledger:
    return Ledger.open_readonly(_settings(args).state_dir / "ledger.db")


def _job_row(ledger: Ledger, job: JobRecord) -> dict[str, Any]:
    decision = ledger.latest_decision(job.job_id)
    outcome = ledger.outcome(job.job_id) or {}
    measured, run_now = outcome.get("total_g"), outcome.get("run_now_total_g")
    return {
        "job_id": job.job_id,
        "name": job.name,
        "state": job.state,
        "user": _user(job.uid),
        "uid": job.uid,
        "submitted_at": job.submitted_at.isoformat(),
        "deadline": job.deadline.isoformat() if job.deadline else None,
        "region": decision.region if decision else None,
        "gpu": decision.gpu if decision else None,
        "planned_start": decision.planned_start.isoformat()
        if decision and decision.planned_start
        else None,
        "expected_total_g": decision.expected_total_g if decision else None,
        "run_now_total_g": decision.run_now_total_g if decision else None,
        "measured_total_g": measured,
        "energy_method": outcome.get("energy_method"),
        "saved_g": run_now - measured if run_now is not None and measured is not None else None,
    }


def _jobs(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must not be negative")
    states = [s for s in args.state or () if s != REJECTED]
    if args.state and len(states) < len(args.state):
        _rejected(args, show_jobs=bool(states))
        if not states:
            return 0
    with _open(args) as ledger:
        rows = [_job_row(ledger, job) for job in ledger.jobs(states, args.limit)]
        totals = ledger.grams_totals(states)
    if args.json:
        print_json(rows)
        return 0
    columns = ("job_id", "name", "state", "user", "region", "gpu", "planned_start", "deadline",
               "expected_total_g", "measured_total_g", "saved_g")  # fmt: skip
    print_table("jobs", columns, [[row[c] for c in columns] for row in rows])
    print(_grams_line(totals))
    return 0


def _grams_line(totals: dict[str, float]) -> str:
    """The totals under the table, over every job matching the states (not just those shown)."""
    return (
        f"total over {totals['jobs']:,.0f} jobs: expected {totals['expected_total_g']:,.2f} g; "
        f"measured {totals['measured_total_g']:,.2f} g over {totals['finished']:,.0f} finished, "
        f"saved {totals['saved_g']:,.2f} g against running each at once (run-now)"
    )


# -- jobs --state rejected ------------------------------------------------------------------

REJECTED = "rejected"


def _rejected(args: argparse.Namespace, *, show_jobs: bool) -> None:
    """The caller's queue lines the daemon refused (root: everyone's), from rejected.jsonl."""
    path = _settings(args).state_dir / REJECTED_NAME
    uid = os.getuid()
    rows = [r for r in _read_rejected(path) if uid == 0 or r.get("uid") == uid]
    if args.limit is not None:
        rows = rows[-args.limit :] if args.limit else []
    if args.json and not show_jobs:
        print_json(rows)
        return
    columns = ("rejected_at", "job_id", "user", "file", "line_no", "reason")
    table = [
        [r.get("rejected_at"), _claimed(r), None if r.get("uid") is None else _user(r["uid"]),
         r.get("file"), r.get("line_no"), r.get("reason")]
        for r in rows
    ]  # fmt: skip
    print_table(f"rejected lines ({path})", columns, table)


def _read_rejected(path: Path) -> list[dict[str, Any]]:
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from exc
    rows = []
    with handle:
        for text in handle:
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                continue  # a torn last record: the daemon appends whole lines
            if isinstance(record, dict):
                rows.append(record)
    return rows


def _claimed(record: dict[str, Any]) -> str | None:
    """The id the rejected line asked for, if it named one."""
    if record.get("job_id"):
        return str(record["job_id"])
    try:
        line = json.loads(record.get("line") or "")
    except (json.JSONDecodeError, TypeError):
        return None
    value = line.get("id") if isinstance(line, dict) else None
    return value if isinstance(value, str) else None


def _status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    uid = os.getuid()
    rejected = rejected_lines(settings.state_dir, args.job_id, None if uid == 0 else uid)
    with Ledger.open_readonly(settings.state_dir / "ledger.db") as ledger:
        try:
            job = ledger.job(args.job_id)
        except UnknownJobError:
            if not rejected:
                raise
            return _print_rejected(args, rejected)
        payload = _job_row(ledger, job)
        decision = ledger.latest_decision(job.job_id)
        run = ledger.run(job.job_id)
        payload["command"] = list(job.request.command)
        payload["source"] = job.source
        payload["cancel_requested_at"] = (
            job.cancel_requested_at.isoformat() if job.cancel_requested_at else None
        )
        payload["decision"] = _decision(decision)
        payload["transitions"] = [
            {"from": t.from_state, "to": t.to_state, "at": t.at.isoformat(), "reason": t.reason}
            for t in ledger.transitions(job.job_id)
        ]
        payload["run"] = None if run is None else {
            "executor": run.executor, "devices": list(run.device_ids),
            "gpu_indices": list(run.gpu_indices),
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "exit_code": run.exit_code, "signal": run.signal, "reason": run.reason,
        }  # fmt: skip
        payload["outcome"] = ledger.outcome(job.job_id)
        payload["rejected_lines"] = rejected
    if args.json:
        print_json(payload)
    else:
        _print_status(payload)
    return 0


def _print_rejected(args: argparse.Namespace, rejected: list[dict[str, Any]]) -> int:
    """No such job, but lines of the caller's naming it were rejected: say why (exit 2, as
    for any unknown job id)."""
    if args.json:
        print_json({"job_id": args.job_id, "state": "rejected", "rejected_lines": rejected})
    else:
        for line in rejected:
            print(f"{args.job_id}: rejected ({line['file']} line {line['line_no']}): "
                  f"{line['reason']}")  # fmt: skip
    return 2


def _decision(decision: Any) -> dict[str, Any] | None:
    if decision is None:
        return None
    expected, run_now = decision.expected_total_g, decision.run_now_total_g
    return {
        "policy": decision.policy,
        "action": decision.action,
        "reason": decision.reason,
        "at": decision.at.isoformat(),
        "region": decision.region,
        "gpu": decision.gpu,
        "devices": list(decision.device_ids),
        "planned_start": decision.planned_start.isoformat() if decision.planned_start else None,
        "expected_duration_s": decision.expected_duration_s,
        "expected_energy_j": decision.expected_energy_j,
        "expected_intensity_g_per_kwh": decision.expected_intensity_g_per_kwh,
        "expected_operational_g": decision.expected_operational_g,
        "expected_embodied_g": decision.expected_embodied_g,
        "expected_total_g": expected,
        "run_now_total_g": run_now,
        "expected_saving_g": run_now - expected
        if expected is not None and run_now is not None
        else None,
        "alternatives": list(decision.alternatives),
    }


def _print_status(payload: dict[str, Any]) -> None:
    print(f"{payload['job_id']} ({payload['name']}): {payload['state']}, user {payload['user']}")
    decision = payload["decision"]
    if decision:
        print(f"decision ({decision['policy']}, {decision['action']}): {decision['reason']}")
        if decision["gpu"]:
            print(
                f"  where: {decision['gpu']} in {decision['region']} "
                f"({', '.join(decision['devices'])}) from {decision['planned_start']}"
            )
            print(f"  expected {_g(decision['expected_total_g'])} vs run-now "
                  f"{_g(decision['run_now_total_g'])}")  # fmt: skip
        alternatives = decision["alternatives"]
        if alternatives:
            print_table(
                "alternatives",
                ("gpu", "region", "start", "total_g"),
                [[a["gpu"], a["region"], a["start"], a["total_g"]] for a in alternatives],
            )
    run, outcome = payload["run"], payload["outcome"]
    if run:
        print(
            f"run: {run['executor']} on {', '.join(run['devices'])} from {run['started_at']}"
            + (f", ended {run['finished_at']} ({run['reason']})" if run["finished_at"] else "")
        )
    if outcome and outcome.get("total_g") is not None:
        print(
            f"outcome: {_g(outcome['total_g'])} measured ({outcome['energy_method']}), "
            f"predicted {_g(outcome['predicted_total_g'])}"
        )
    print_table(
        "transitions",
        ("at", "from", "to", "reason"),
        [[t["at"], t["from"], t["to"], t["reason"]] for t in payload["transitions"]],
    )
    for line in payload["rejected_lines"]:
        print(f"your line naming it was rejected ({line['file']} line {line['line_no']}): "
              f"{line['reason']}")  # fmt: skip


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g} g"


# -- cancel, export -------------------------------------------------------------------------


def _cancel(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with Ledger.open_readonly(settings.state_dir / "ledger.db") as ledger:
        try:
            job = ledger.job(args.job_id)
        except UnknownJobError as exc:
            raise UsageError(
                f"{exc} (a job just submitted is known once the daemon ingests it)"
            ) from exc
    uid = os.getuid()
    if uid not in (job.uid, 0):
        raise UsageError(f"job {job.job_id} belongs to {_user(job.uid)}, not to you")
    if job.state in FINAL_STATES:
        raise UsageError(f"job {job.job_id} is already {job.state}")
    append_submission(
        settings.state_dir, uid, {"cancel": job.job_id}, settings.queue.max_line_bytes
    )
    if args.json:
        print_json({"job_id": job.job_id, "cancel_requested": True, "state": job.state})
    else:
        print(f"cancel requested for {job.job_id} (was {job.state})")
    return 0


def _export(args: argparse.Namespace) -> int:
    if args.fmt == "codecarbon":
        return _export_codecarbon(args)
    if args.table is None:
        raise UsageError("export: name a table (" + ", ".join(EXPORTABLE) + ") or use "
                         "--format codecarbon")  # fmt: skip
    if args.fmt is None and args.output.suffix.lower() not in EXPORT_SUFFIXES:
        known = " or ".join(EXPORT_SUFFIXES)
        raise UsageError(f"{args.output}: unknown extension {args.output.suffix!r} (use {known})")
    with _open(args) as ledger:
        rows = export_table(ledger, args.table, args.output, args.fmt)
    if args.json:
        print_json({"table": args.table, "path": str(args.output), "rows": rows})
    else:
        print(f"wrote {rows} rows of {args.table} to {args.output}")
    return 0


def _export_codecarbon(args: argparse.Namespace) -> int:
    from daemon.cli.report_cmd import write_atomic
    from daemon.reports.codecarbon import codecarbon_csv
    from daemon.reports.lines import ledger_lines

    if args.table is not None:
        raise UsageError("export --format codecarbon writes finished jobs; drop the table name")
    with _open(args) as ledger:
        lines = ledger_lines(ledger)
    write_atomic(args.output, codecarbon_csv(lines))
    if args.json:
        print_json({"format": "codecarbon", "path": str(args.output), "rows": len(lines)})
    else:
        print(f"wrote {len(lines)} finished jobs to {args.output} (CodeCarbon emissions.csv)")
    return 0
