"""``carbond status ID``: one job's decision and alternatives, run, outcome and transitions,
and the caller's queue lines naming it that the daemon rejected (or will: not read yet)."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from typing import Any, Final

from daemon.accounting import is_measured
from daemon.cli.context import add_ledger_options, open_ledger, settings_from
from daemon.cli.job_rows import job_row
from daemon.cli.output import held_stdout, print_json, print_table, printable
from daemon.cli.rejected import rejected_naming
from daemon.cli.unread import UnreadJob, UnreadLookup, line_rules, unread_lookup
from daemon.ledger import UnknownJobError
from daemon.queue import REJECTED_NAME
from daemon.reports.lines import user_name
from daemon.reports.render import fixed, unsigned_zero
from daemon.settings import Settings
from daemon.statedir import LEDGER_NAME
from daemon.states import ACTIVE_STATES

__all__ = ["register"]

J_PER_KWH: Final = 3_600_000


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``status``."""
    status = subparsers.add_parser(
        "status",
        help="one job: decision, alternatives, outcome",
        description="Show one job (anyone's): its state, the policy's latest decision and "
        "reason, where and when it was planned, expected vs run-now grams (gCO2e), the "
        "alternatives considered, every transition, the run and the outcome; also your queue "
        "lines for that id the daemon rejected, or has not read yet and will reject. Exit 2 "
        "for an unknown id.",
    )
    add_ledger_options(status)
    status.add_argument("job_id", metavar="ID", help="the job's id (carbond jobs)")
    status.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    rejected = rejected_naming(settings.state_dir / REJECTED_NAME, args.job_id, os.getuid())
    state_dir = settings.state_dir
    if not (state_dir / LEDGER_NAME).is_file() and state_dir.is_dir():
        found = _lookup(settings, args.job_id)  # no daemon has started yet
        if found.job is not None:
            return _print_unread(args, found.job)
        if found.doomed is not None:
            return _print_doomed(args, found.doomed)
    # What it prints is held until the ledger is closed (held_stdout): a daemon started during
    # the read fails the command at its close (daemon/ledger/readonly.py), with nothing printed.
    with held_stdout(), open_ledger(state_dir) as ledger:
        try:
            job = ledger.job(args.job_id)
        except UnknownJobError:
            found = _lookup(settings, args.job_id)
            if found.job is not None:
                return _print_unread(args, found.job)
            if rejected:
                return _print_rejected(args, rejected)
            if found.doomed is not None:
                return _print_doomed(args, found.doomed)
            raise
        payload = job_row(ledger, job, datetime.now(UTC))
        decision = ledger.latest_decision(job.job_id)
        run = ledger.run(job.job_id)
        payload["command"] = list(job.request.command)
        payload["source"] = job.source
        payload["cancel_requested_at"] = (
            job.cancel_requested_at.isoformat() if job.cancel_requested_at else None
        )
        payload["decision"] = _decision(decision, ledger.counterfactual(job.job_id))
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
            "stopping": next((s.reason for s in ledger.stopping_runs()
                              if s.run.job_id == job.job_id), None),
        }  # fmt: skip
        payload["outcome"] = ledger.outcome(job.job_id)
        payload["rejected_lines"] = rejected
    if args.json:
        print_json(payload)
    else:
        _print_status(payload)
    return 0


def _lookup(settings: Settings, job_id: str) -> UnreadLookup:
    """``job_id``'s line, not read yet, as ``carbond jobs`` lists it (the caller's queue file;
    root: the first of any user's that the daemon reads), with its owner and whether a cancel
    for it follows; else why the caller's (root: any user's) unread line for it will be
    rejected, as ``carbond cancel`` says it: one pass over the files."""
    now, rules = datetime.now(UTC), line_rules(settings)
    return unread_lookup(settings.state_dir, job_id, os.getuid(), now=now, rules=rules)


def _print_doomed(args: argparse.Namespace, why: str) -> int:
    """No such job, and none to come: its only line, not read yet, will be rejected (exit 2,
    as for any unknown job id)."""
    if args.json:
        print_json({"job_id": args.job_id, "state": "rejected", "read": False, "reason": why})
    else:
        print(f"{args.job_id}: will never be queued: {printable(why)}")
    return 2


def _print_unread(args: argparse.Namespace, unread: UnreadJob) -> int:
    """The ledger has no such job, but the caller's queue file (root: a user's) holds its
    line, not read yet (the daemon is down, or has not ingested it): say so, and whether its
    cancel is pending there too (exit 0: the job exists)."""
    queue_file, owner = unread.queue_file, unread.uid
    whose = f" ({user_name(owner)}'s)" if owner != os.getuid() else ""
    if args.json:
        print_json({"job_id": args.job_id, "state": "submitted", "queue_file": str(queue_file),
                    "cancel_requested": unread.cancel,
                    "newline_pending": not unread.ended, "held": unread.held})  # fmt: skip
    elif unread.held is not None:  # its whole file waits: its other states come after that
        print(f"{args.job_id}: submitted to {queue_file}{whose}, not read by the daemon yet: "
              f"{unread.held}")  # fmt: skip
    elif not unread.ended:
        print(f"{args.job_id}: submitted to {queue_file}{whose}, not read by the daemon yet: "
              f"{_NO_NEWLINE}")  # fmt: skip
    elif unread.cancel:
        print(f"{args.job_id}: submitted to {queue_file}{whose}, not read by the daemon yet; "
              "cancel requested (it will be cancelled before it starts)")  # fmt: skip
    else:
        print(f"{args.job_id}: submitted to {queue_file}{whose}, not read by the daemon yet")
    return 0


_NO_NEWLINE = ("its line has no newline yet, and the daemon reads a line once it ends (the next "
               "`carbond submit` or `cancel` to that file ends it first)")  # fmt: skip


def _print_rejected(args: argparse.Namespace, rejected: list[dict[str, Any]]) -> int:
    """No such job, but lines of the caller's naming it were rejected: say why (exit 2, as
    for any unknown job id)."""
    if args.json:
        print_json({"job_id": args.job_id, "state": "rejected", "rejected_lines": rejected})
    else:
        for line in rejected:
            print(f"{args.job_id}: rejected ({line['file']} line {line['line_no']}): "
                  f"{printable(str(line['reason']))}")  # fmt: skip
    return 2


def _decision(decision: Any, run_now_stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """The latest decision; the run-now counterfactual is the one stored at submission (the
    start the job could have had then), which every later decision and the outcome keep."""
    if decision is None:
        return None
    expected = decision.expected_total_g
    run_now = run_now_stored["total_g"] if run_now_stored else decision.run_now_total_g
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
        "run_now": run_now_stored,
        "expected_saving_g": run_now - expected
        if expected is not None and run_now is not None
        else None,
        "alternatives": list(decision.alternatives),
    }


def _print_status(payload: dict[str, Any]) -> None:
    asked = payload["cancel_requested_at"]
    pending = (
        f", cancel requested at {asked}" if asked and payload["state"] in ACTIVE_STATES else ""
    )
    name = printable(str(payload["name"]))
    if payload["deadline_missed"]:
        pending += f", past its deadline {payload['deadline']}"
    print(f"{payload['job_id']} ({name}): {payload['state']}, user {payload['user']}{pending}")
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
    if run:  # its reason may quote the job's argv ("command not found: ..."): the user's text
        started = (f" from {run['started_at']}" if run["started_at"]
                   else ", held there for its planned start (not started yet)"
                   if payload["state"] == "planned" else ", not started")  # fmt: skip
        print(printable(
            f"run: {run['executor']} on {', '.join(run['devices'])}{started}"
            + (f", ended {run['finished_at']} ({run['reason']})" if run["finished_at"] else "")
            + (f"; still being stopped ({run['stopping']})" if run["stopping"] else "")
        ))  # fmt: skip
    if outcome and outcome.get("total_g") is not None:
        method = outcome["energy_method"]
        energy = f"measured ({method})" if is_measured(method) else f"energy {method}"
        print(f"outcome: {_g(outcome['total_g'])} {energy}, "
              f"predicted {_g(outcome['predicted_total_g'])}")  # fmt: skip
        if payload["saved_g"] is not None:  # the saving jobs and report give, and its run-now
            print(f"  saved {unsigned_zero(_g(payload['saved_g']))} against run-now as the run "
                  f"turned out ({_g(payload['run_now_realised_g'])})")  # fmt: skip
        _print_on_site(outcome)
    elif outcome and (why := _no_grams(outcome)):
        print(f"outcome: no grams: {why}")
    print_table(
        "transitions",
        ("at", "from", "to", "reason"),
        _transition_rows(payload["transitions"]),
    )
    for line in payload["rejected_lines"]:
        print(f"your line naming it was rejected ({line['file']} line {line['line_no']}): "
              f"{printable(str(line['reason']))}")  # fmt: skip


def _transition_rows(transitions: list[dict[str, Any]]) -> list[list[Any]]:
    """The transitions table's rows; a pair of transitions repeated back to back (a held
    job's release retried each planning round: ``dispatched`` written ahead of the release,
    then ``requeued`` when it failed, e.g. while Slurm's accounting has not recorded its
    job's end) is shown once, then one row saying how many more times and until when.
    ``--json`` keeps every transition."""
    rows: list[list[Any]] = []
    shown: list[tuple[Any, ...]] = []  # (from, to, reason) of the rows shown
    repeats, last_at, i = 0, "", 0

    def flush() -> None:
        nonlocal repeats
        if repeats:
            rows.append([last_at, "...", "...", f"the two transitions above, {repeats} more "
                         f"time{'s' if repeats > 1 else ''} until {last_at}"])  # fmt: skip
            repeats = 0

    while i < len(transitions):
        pair = [(t["from"], t["to"], t["reason"]) for t in transitions[i : i + 2]]
        if len(shown) >= 2 and pair == shown[-2:]:
            repeats, last_at, i = repeats + 1, transitions[i + 1]["at"], i + 2
            continue
        flush()
        t = transitions[i]
        rows.append([t["at"], t["from"], t["to"], t["reason"]])
        shown.append((t["from"], t["to"], t["reason"]))
        i += 1
    flush()
    return rows


def _no_grams(outcome: dict[str, Any]) -> str:
    """Why an outcome has no grams, where its ending said (its region no longer configured);
    else empty."""
    try:
        details = json.loads(str(outcome.get("details_json") or "{}"))
    except ValueError:
        return ""
    return str(details.get("no_grams") or "") if isinstance(details, dict) else ""


def _print_on_site(outcome: dict[str, Any]) -> None:
    """At a region with a site: the share of the job's facility energy PV and the battery
    covered (its grams charge only the rest at the grid's intensity)."""
    pv, battery, grid = (outcome.get(f"site_{k}_j") for k in ("pv", "battery", "grid"))
    if pv is None or battery is None or grid is None:
        return
    facility = pv + battery + grid
    if facility <= 0:
        return
    print(
        f"  on site: {(pv + battery) / facility:.1%} of {fixed(facility / J_PER_KWH)} kWh "
        f"(PV {pv / facility:.1%}, battery {battery / facility:.1%}), the rest from the grid"
    )


def _g(value: float | None) -> str:
    return "-" if value is None else f"{fixed(value)} g"  # .4g wrote 4.13e-05, 1.235e+04
