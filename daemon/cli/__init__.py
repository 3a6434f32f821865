"""The ``carbond`` command line: one sub-command module per concern.

Every sub-command module exposes ``register(subparsers)``, which adds its parsers and sets
``func`` on them; :func:`main` is the composition root that parses, runs and maps errors to
exit codes (0 ok, also when the reader of stdout stops early as ``| head`` does; 1 runtime
failure, also output to a closed or full stdout (``>&-``, ``> /dev/full``), ``--help``'s
too, an error naming stdout; 2 bad input; 130 interrupted). With stderr closed (``2>&-``) or
full (``2>/dev/full``) error, note and warning lines are dropped, never written to stdout
(:func:`daemon.cli.output.stderr_line`); the exit code still says. Under ``--json`` a failure
also prints one ``{"error": {...}}`` document on stdout, where none of the output was written
(:mod:`daemon.cli.error_json`).
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO, cast

from daemon.cli.error_json import asks_json, error_document, usage_document, write_document
from daemon.cli.output import error_text, fail
from daemon.errors import DaemonError
from daemon.logs import configure_logging
from daemon.package_version import carbond_version

__all__ = ["build_parser", "joined_past_spans", "main"]

# Each module registers its sub-commands; add a line here for a new module.
_COMMAND_MODULES: tuple[str, ...] = (
    "daemon.cli.footprint_cmds",
    "daemon.cli.paper_cmd",
    "daemon.cli.advise_cmd",
    "daemon.cli.intensity_cmds",
    "daemon.cli.submit_cmd",
    "daemon.cli.jobs_cmd",
    "daemon.cli.cancel_cmd",
    "daemon.cli.export_cmd",
    "daemon.cli.status_cmd",
    "daemon.cli.run_cmd",
    "daemon.cli.doctor_cmd",
    "daemon.cli.backup_cmd",
    "daemon.cli.prune_cmd",
    "daemon.cli.demo_cmd",
    "daemon.cli.replay_cmd",
    "daemon.cli.report_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every sub-command registered."""
    parser = _Parser(
        prog="carbond",
        description="Carbon-aware scheduling daemon for LLM inference on GPU clusters.",
    )
    parser.add_argument(
        "--version",
        action=_Version,
        nargs=0,
        help="print this install's carbond version (the installed package's) and exit",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    subparsers.help = f"one of: {', '.join(subparsers.choices)} (carbond COMMAND --help says more)"
    return parser


class _UsageExit(SystemExit):
    """argparse's exit 2 for a command line it refused (its usage and error line written to
    stderr), with what it said: the refusing parser's ``prog``, ``message`` and ``usage``."""

    def __init__(self, prog: str, message: str, usage: str) -> None:
        super().__init__(2)
        self.prog, self.message, self.usage = prog, message, usage


class _Parser(argparse.ArgumentParser):
    """argparse's parser, but ``--help`` output that cannot be written is an error: argparse
    drops a failed write (``carbond --help >&-`` printed the help to stderr instead, and
    ``> /dev/full`` lost it) and exits 0. A refused command line exits 2 as argparse's does,
    with what was refused (:class:`_UsageExit`), for ``--json``'s error document. Sub-parsers
    are made of this class too."""

    def error(self, message: str) -> NoReturn:
        try:
            super().error(message)  # usage and `carbond CMD: error: ...` on stderr, exit 2
        except SystemExit as exc:
            if exc.code != 2:  # pragma: no cover - argparse exits 2 for every refusal
                raise
        raise _UsageExit(self.prog, message, self.format_usage())

    def print_help(self, file: Any = None) -> None:
        if file is not None:  # a caller's own stream: argparse's way
            super().print_help(file)
            return
        sys.stdout.write(self.format_help())
        sys.stdout.flush()  # a full or closed stdout shows here, before argparse exits 0


class _Version(argparse.Action):
    """``carbond --version``: ``carbond 0.1.0`` on stdout, exit 0. Not argparse's own
    ``version`` action, which drops a failed write (``> /dev/full``) and exits 0 as
    ``--help`` did; this one writes through the named stdout, as :meth:`_Parser.print_help`."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        sys.stdout.write(f"carbond {carbond_version()}\n")
        sys.stdout.flush()
        parser.exit()


# A relative time or span before now ("-7d", "-12h", "-1.5d"): a value, not an option.
_PAST_SPAN = re.compile(r"-\d+(\.\d+)?[A-Za-z]+")


def joined_past_spans(argv: Sequence[str]) -> list[str]:
    """``--until -1d`` as ``--until=-1d``: argparse reads any token that starts with ``-`` and
    is not a bare negative number as an option, so the value a long option was given (the form
    ``report --since/--until`` document) was lost ("expected one argument"). Tokens after
    ``--`` (a job's own argv) are left alone."""
    out: list[str] = []
    for i, token in enumerate(argv):
        if token == "--":
            return [*out, *argv[i:]]
        previous = out[-1] if out else ""
        if previous.startswith("--") and "=" not in previous and _PAST_SPAN.fullmatch(token):
            out[-1] = f"{previous}={token}"
        else:
            out.append(token)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``carbond`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    if sys.stderr is None:  # `carbond jobs --json 2>&-`: before argparse can print its usage
        _closed_stderr()
    if sys.stdout is None:  # `carbond jobs >&-`: fd 1 was closed, Python has no stdout
        _closed_stdout()
    stdout = sys.stdout
    named = _NamedStdout(stdout)
    sys.stdout = cast(TextIO, named)
    words = joined_past_spans(sys.argv[1:] if argv is None else argv)
    args: argparse.Namespace | None = None
    try:
        # `--help` writes through the named stdout too; a usage error still exits 2 in argparse
        try:
            args = _parse(build_parser(), words)
        except _UsageExit as exc:  # argparse's lines are on stderr; under --json, the document
            if asks_json(words):
                write_document(usage_document(exc.prog, exc.message, exc.usage))
            raise
        # Log events go to stderr so stdout holds only the command's output (tables, --json);
        # long-running commands (run, demo, doctor) reconfigure with their own level and format.
        configure_logging(level="WARNING")
        code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_left()
    except Exception as exc:  # every carbond error becomes one line, never a traceback
        code = fail(exc)
        if getattr(args, "json", False) and not named.began:  # nothing of the output written
            write_document(error_document(exc, error_text(exc), code))
        return code
    finally:
        sys.stdout = stdout
    return code


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parser.parse_args(argv)``, but an option no command has (``submit --modle``) is
    refused by the command's own parser, with its usage (the options it does have), not by
    the top-level one, whose usage is only ``carbond [-h] COMMAND ...``."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        own = _command_parser(parser, args.func) or parser
        own.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _command_parser(parser: argparse.ArgumentParser, func: Any) -> argparse.ArgumentParser | None:
    """The (sub-)parser that runs ``func``, found by it: ``args.command`` is not the command's
    name (submit's argv is a positional of that name), and ``forecast backtest`` is nested."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            subs: dict[str, argparse.ArgumentParser] = action.choices
            for sub in subs.values():
                if sub.get_default("func") is func:
                    return sub
                if (nested := _command_parser(sub, func)) is not None:
                    return nested
    return None


class _NamedStdout:
    """``sys.stdout`` while a command runs: a write or flush that fails names stdout
    (``carbond gpus > /dev/full`` said only "[Errno 28] No space left on device", as a full
    disk under the ledger or an export file would). A closed pipe is left to :func:`main`;
    everything else is the stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.began = False  # whether the command has written any of its output

    def write(self, text: str) -> int:
        self.began = self.began or bool(text)
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _write_error(exc) from exc

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _write_error(exc) from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _write_error(exc: OSError) -> DaemonError:
    return DaemonError(f"cannot write the output to stdout: {exc.strerror or exc}")


def _reader_left() -> int:
    """The reader of stdout went away (``carbond status ID | head -1``): what it read was what
    it wanted, so exit 0 quietly; stdout now goes to /dev/null so that the interpreter's last
    flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0


class _ClosedStdout(io.TextIOBase):
    """``sys.stdout`` when fd 1 was closed: Python leaves it None, and the first output was an
    ``AttributeError`` traceback. Writing to it is a carbond error, as writing to a closed fd
    is for ``ls >&-``."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise DaemonError("stdout is closed: nothing to write the output to")


def _closed_stdout() -> None:
    """Hold fd 1 with /dev/null opened read-only (writes to it still fail; a file carbond or a
    child opens next can no longer become fd 1) and make writes to stdout a carbond error."""
    fd = os.open(os.devnull, os.O_RDONLY)
    if fd != 1:
        os.dup2(fd, 1)
        os.close(fd)
    sys.stdout = _ClosedStdout()


def _closed_stderr() -> None:
    """``sys.stderr`` when fd 2 was closed: Python leaves it None, and ``print(file=None)``
    (argparse's usage, every ``carbond: error:`` line) writes to stdout instead, into the
    output a script parses. Hold fd 2 with /dev/null (a file carbond or a child opens next,
    the ledger, can no longer become fd 2) and drop what is written there, as a shell's
    ``ls missing 2>&-`` does; the exit code still tells the failure."""
    fd = os.open(os.devnull, os.O_WRONLY)
    if fd != 2:
        os.dup2(fd, 2)
        os.close(fd)
    # the process's stderr from now on: never closed, so no context manager
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
