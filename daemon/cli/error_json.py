"""A failed ``--json`` command's one JSON document on stdout, beside the ``carbond: error:``
line on stderr (README, "Errors under --json")::

    {"error": {"kind": "unknown_job", "message": "unknown job 'nope'", "exit_code": 2,
               "job_id": "nope"}}

``kind`` names the error's family (:data:`KINDS`), ``message`` is the stderr line's text after
``carbond: error: ``, ``exit_code`` the process's; the other fields are what the error carries
(:data:`_FIELDS`; :data:`_FIELDS_WHERE_SET` where set). A plain bad input (``UsageError``)
raised from an error of a kind of bad input (:data:`_INPUT_KINDS`, anywhere down its
``__cause__`` chain: an unknown zone under "no intensity signal") is of that kind, with its
fields; an error raised from one whose kind carries fields has it as ``cause`` (a replay's
cluster file naming its site's bad PV CSV: ``{"kind": "replay_input", "file":
"cluster.toml", ..., "cause": {"kind": "site_config", ..., "cause": {"kind": "solar_input",
"file": "pv.csv", "line": 3, "field": "power_w"}}}``), left out where the document already
says all it carries with the same values (its own cause, if any, in its place).

Written only where nothing of the command's output reached stdout: a second document after a
first, whole or cut short, would leave stdout unparseable either way.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from typing import Any, Final

from daemon.cli.output import clean_json
from daemon.errors import DaemonError

__all__ = ["KINDS", "asks_json", "error_document", "kind_of", "usage_document", "write_document"]

# An error's kind: that of the first class of its MRO listed here, by module and name (not
# imported: `carbond` starts without the modules of errors its command cannot raise).
KINDS: Final[dict[str, str]] = {
    "daemon.settings.ConfigError": "config",
    "daemon.sites.model.SiteConfigError": "site_config",
    "daemon.ledger.errors.UnknownJobError": "unknown_job",
    "daemon.ledger.errors.MissingLedgerError": "missing_ledger",
    "forecasts.static.UnknownZoneError": "unknown_zone",
    "forecasts.errors.UnknownForecasterError": "unknown_forecaster",
    "policies.errors.UnknownGpuError": "unknown_gpu",
    "policies.errors.UnknownModelError": "unknown_model",
    "policies.errors.CatalogError": "unknown_name",
    "policies.base.UnknownPolicyError": "unknown_policy",
    "policies.errors.InvalidWorkloadError": "invalid_workload",
    "daemon.cli.workload_flags.FlagError": "invalid_workload",  # the field named by its flag
    "forecasts.errors.TraceFormatError": "trace_format",
    "daemon.replay.errors.ReplayInputError": "replay_input",
    "daemon.queue.files.MissingStateDirError": "missing_state_dir",
    "daemon.queue.reasons.InvalidLineError": "invalid_line",
    "daemon.errors.UsageError": "bad_input",
    "daemon.ledger.errors.LedgerError": "ledger",
    "daemon.queue.files.QueueError": "queue",
    "daemon.statedir.UnsafeStateDirError": "state_dir",
    "daemon.statedir.StateDirLockedError": "state_dir",
    "daemon.executors.errors.ExecutorError": "executor",
    "daemon.gpu.errors.GpuError": "gpu",
    "daemon.replay.errors.ReplayError": "replay",
    "daemon.errors.DaemonError": "daemon",
    "forecasts.errors.RateLimitedError": "rate_limited",
    "forecasts.errors.ProviderError": "provider",
    "forecasts.errors.NoSignalError": "no_signal",
    "forecasts.errors.CacheError": "cache",
    "forecasts.errors.SolarInputError": "solar_input",
    "forecasts.errors.SeriesError": "series",
    "forecasts.errors.ForecastsError": "forecasts",
    "builtins.OSError": "os",
}

# The fields a kind's error carries: (name in the document, attribute of the error).
_FIELDS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "site_config": (("region", "region"), ("field", "field"), ("reason", "reason")),
    "unknown_job": (("job_id", "job_id"),),
    "unknown_zone": (("zone", "zone"),),
    "unknown_gpu": (("name", "name"), ("known", "known")),
    "unknown_model": (("name", "name"), ("known", "known")),
    "unknown_name": (("name", "name"), ("known", "known")),
    "unknown_policy": (("name", "name"), ("known", "known")),
    "unknown_forecaster": (("name", "name"), ("known", "known")),
    "invalid_workload": (("field", "field"), ("value", "value"), ("allowed", "allowed")),
    "trace_format": (("file", "path"), ("line", "line"), ("field", "column")),
    "replay_input": (("file", "file"), ("line", "line"), ("field", "field")),
    "solar_input": (("file", "file"), ("line", "line"), ("field", "field")),
    "rate_limited": (("retry_after_s", "retry_after_s"),),
    "missing_ledger": (("file", "file"), ("state_dir", "state_dir")),
    "os": (("file", "filename"),),
}

# Fields a kind's error carries where it is about one of them, left out where not (null on
# most of a kind's errors): a replay's intensity zone or ledger job.
_FIELDS_WHERE_SET: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "replay_input": (("zone", "zone"), ("job_id", "job_id")),
}

# The kinds of bad input that a plain UsageError raised from one (``raise UsageError(...) from
# exc``, at any depth) takes, with their fields: the wrapper keeps only its message and exit code.
_INPUT_KINDS: Final = frozenset({
    "config", "site_config", "unknown_job", "unknown_zone", "unknown_gpu", "unknown_model",
    "unknown_name", "unknown_policy", "unknown_forecaster", "invalid_workload", "trace_format",
    "replay_input", "solar_input", "missing_state_dir", "missing_ledger", "invalid_line",
})  # fmt: skip


def kind_of(exc: BaseException) -> str:
    """The kind of ``exc``, a carbond error (:func:`daemon.cli.output.exit_code` accepts it;
    anything else: ``error``)."""
    for cls in type(exc).__mro__:
        if (kind := KINDS.get(f"{cls.__module__}.{cls.__qualname__}")) is not None:
            return kind
    return "error"


def error_document(exc: BaseException, message: str, exit_code: int) -> dict[str, Any]:
    """``{"error": {...}}`` for ``exc``, failed with ``message`` (the error line's text)."""
    if kind_of(exc) == "bad_input":
        exc = next((c for c in _causes(exc) if kind_of(c) in _INPUT_KINDS), exc)
    body: dict[str, Any] = {"kind": kind_of(exc), "message": message, "exit_code": exit_code}
    body.update(_fields(exc))
    return {"error": clean_json(body)}


def _causes(exc: BaseException) -> list[BaseException]:
    """The errors ``exc`` was raised from (``raise ... from``), nearest first."""
    chain: list[BaseException] = []
    cause = exc.__cause__
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__
    return chain


def _fields(exc: BaseException) -> dict[str, Any]:
    """What ``exc`` carries by its kind, and the nearest cause that carries some, as ``cause``."""
    kind = kind_of(exc)
    body: dict[str, Any] = {}
    for name, attribute in _FIELDS.get(kind, ()):
        body[name] = getattr(exc, attribute, None)
    for name, attribute in _FIELDS_WHERE_SET.get(kind, ()):
        if (value := getattr(exc, attribute, None)) is not None:
            body[name] = value
    if kind == "config":
        body["problems"] = [
            {"problem": str(p), "file": getattr(p, "file", None),
             "line": getattr(p, "line", None), "field": getattr(p, "field", None)}
            for p in getattr(exc, "problems", ())
        ]  # fmt: skip
    elif kind == "os":
        code = getattr(exc, "errno", None)
        body["errno"] = errno.errorcode.get(code) if isinstance(code, int) else None
    cause = next((c for c in _causes(exc) if _carries(c)), None)
    if cause is not None and (document := _cause_document(body, cause)) is not None:
        body["cause"] = document
    return body


def _cause_document(body: dict[str, Any], cause: BaseException) -> dict[str, Any] | None:
    """``cause`` as ``body``'s ``cause``, or None where all it carries ``body`` already has
    with the same values (a replay's ``TraceFormatError`` under its ``ReplayInputError``, same
    file, line and field); then its own cause, if any, takes its place."""
    document = {"kind": kind_of(cause), **_fields(cause)}
    inner: dict[str, Any] | None = document.pop("cause", None)
    if any(k not in body or body[k] != v for k, v in document.items() if k != "kind"):
        return document if inner is None else {**document, "cause": inner}
    return inner


def _carries(exc: BaseException) -> bool:
    kind = kind_of(exc)
    return kind in _FIELDS or kind == "config"


def usage_document(prog: str, message: str, usage: str) -> dict[str, Any]:
    """``{"error": {...}}`` for argparse's refusal of the command line: ``command`` is the
    refusing parser's (``jobs``, ``forecast backtest``; empty for ``carbond``'s own) and
    ``usage`` its usage line."""
    command = prog.removeprefix("carbond").strip()
    return {"error": {"kind": "usage", "message": message, "exit_code": 2,
                      "command": command, "usage": usage.strip()}}  # fmt: skip


def asks_json(argv: list[str]) -> bool:
    """Whether the command line asks for JSON: a ``--json`` before ``--`` (after it, the argv
    of the job ``submit`` queues). What argparse refused is not parsed, so this is all there
    is to go by for a usage error: the exact word (argparse also takes ``--js``)."""
    end = argv.index("--") if "--" in argv else len(argv)
    return "--json" in argv[:end]


def write_document(document: dict[str, Any]) -> None:
    """Write ``document`` to stdout as :func:`daemon.cli.output.print_json` does. A stdout
    that cannot take it (closed, full, a reader gone) loses it, as stderr loses the error
    line: fd 1 then points at /dev/null, so the interpreter's last flush does not fail (and
    print) again; the exit code still says."""
    try:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        sys.stdout.flush()
    except (OSError, DaemonError):  # a closed stdout's write is a DaemonError
        _drop_stdout()


def _drop_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # a stdout with no fd (a test's capture, a closed fd 1)
        pass
    finally:
        os.close(devnull)
