"""The ``carbond`` command line: one sub-command module per concern.

Every sub-command module exposes ``register(subparsers)``, which adds its parsers and sets
``func`` on them; :func:`main` is the composition root that parses, runs and maps errors to
exit codes (0 ok, 1 runtime failure, 2 bad input, 130 interrupted).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from daemon.cli.output import fail
from daemon.logs import configure_logging

__all__ = ["build_parser", "main"]

# Each module registers its sub-commands; add a line here for a new module.
_COMMAND_MODULES: tuple[str, ...] = (
    "daemon.cli.footprint_cmds",
    "daemon.cli.paper_cmd",
    "daemon.cli.advise_cmd",
    "daemon.cli.intensity_cmds",
    "daemon.cli.jobs_cmds",
    "daemon.cli.run_cmd",
    "daemon.cli.doctor_cmd",
    "daemon.cli.demo_cmd",
    "daemon.cli.replay_cmd",
    "daemon.cli.report_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="carbond",
        description="Carbon-aware scheduling daemon for LLM inference on GPU clusters.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``carbond`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Log events go to stderr so stdout holds only the command's output (tables, --json);
    # long-running commands (run, demo, doctor) reconfigure with their own level and format.
    configure_logging(level="WARNING")
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # every carbond error becomes one line, never a traceback
        return fail(exc)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
