"""``carbond doctor``: one pass/fail line per check; exit 1 when any check fails."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.cli.context import add_common_options
from daemon.cli.output import EXIT_FAILURE, print_json, printable
from daemon.doctor.checks import run_checks
from daemon.logs import configure_logging

__all__ = ["register"]

_MARK = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}


def register(subparsers: Any) -> None:
    """Add ``doctor``."""
    doctor = subparsers.add_parser(
        "doctor",
        help="check config, state dir, ledger, policy, GPUs, NVML, Slurm, signals, metrics port, "
        "queue, wrapper, jobs' cgroup, daemon health",
        description="Check a node as carbond run would see it (run it as the daemon's user, "
        "root): one line per check, PASS, FAIL or SKIP (config, state_dir, ledger, policy, gpus, "
        "nvml, slurm, signals, metrics, queue, wrapper, cgroup, health). Exit 1 when any check "
        "fails (SKIP is not a failure). docs/operations.md lists what each check fails on.",
    )
    add_common_options(doctor)
    doctor.add_argument(
        "--state-dir", type=Path, default=None, help="override state_dir from the settings"
    )
    doctor.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    configure_logging(level="WARNING")  # warnings go to stderr; stdout stays the report
    overrides = {"state_dir": args.state_dir} if args.state_dir is not None else {}
    checks = run_checks(args.config, datetime.now(UTC), **overrides)
    ok = all(check.status != "fail" for check in checks)
    if args.json:
        print_json(
            {
                "ok": ok,
                "checks": [
                    {"check": c.name, "status": c.status, "detail": c.detail} for c in checks
                ],
            }
        )
    else:
        width = max(len(c.name) for c in checks)
        for check in checks:
            # a detail quotes file names any user chose (queue.d/ is 1733): escaped, so that
            # none drives the terminal of the operator who runs doctor
            print(f"{_MARK[check.status]}  {check.name:<{width}}  {printable(check.detail)}")
    return 0 if ok else EXIT_FAILURE
