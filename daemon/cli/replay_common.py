"""What ``carbond replay`` and ``carbond tune`` share: their input options, the inputs and
slacks read from them, the policy check before any replay, quiet logs, the input notes and the
progress bar (the commands themselves: :mod:`daemon.cli.replay_cmd`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from daemon.cli.output import note
from daemon.logs import configure_logging
from daemon.replay.driver import ReplaySetup
from daemon.replay.errors import ReplayInputError
from daemon.replay.inputs import (
    JOBS_FORMATS,
    PolicySpec,
    ReplayInputs,
    parse_duration_s,
    parse_time,
)
from daemon.replay.parallel import RunProgress, available_workers
from policies import PoliciesError, get_policy
from policies.footprint.runtimes import STUDY_SUFFIX

__all__ = [
    "add_inputs",
    "check_grid",
    "check_policies",
    "inputs_from",
    "parse_slacks",
    "print_notes",
    "progress",
    "quiet_logs",
]


def add_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs",
        type=Path,
        action="append",
        required=True,
        metavar="FILE",
        help="request or job trace (repeat to overlay several traces)",
    )
    parser.add_argument(
        "--jobs-format",
        choices=JOBS_FORMATS,
        default="carbond",
        help="request trace format, or ledger: the jobs of a carbond ledger.db, each with its "
        "own model, workload and deadline (--slack, --model and --requests-per-job do not "
        "apply) (default carbond)",
    )
    parser.add_argument(
        "--cluster",
        type=Path,
        required=True,
        metavar="CLUSTER.toml",
        help="[[regions]] with declared GPUs: a cluster file or the daemon's carbond.toml",
    )
    parser.add_argument(
        "--intensity",
        type=Path,
        action="append",
        required=True,
        metavar="FILE",
        help="Electricity Maps hourly CSV (repeat per zone; a zone's yearly files are joined)",
    )
    parser.add_argument("--start", required=True, help="replay start, e.g. 2023-06-05")
    parser.add_argument("--days", type=float, default=7.0, help="replayed span (default 7)")
    parser.add_argument(
        "--requests-per-job",
        type=int,
        default=1024,
        help="requests batched into one job (default 1024)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="stretch the trace's arrival pattern by this factor (default 1)",
    )
    parser.add_argument("--model", default="llama-3b", help="catalog model (default llama-3b)")
    parser.add_argument("--runtime", default="vllm", help="runtime profile (default vllm)")
    parser.add_argument(
        "--power-model",
        choices=("calibrated", "study"),
        default="calibrated",
        help="GPU power curve: carbond's calibrated one, or the simulation study's MFU curve "
        "(same as --runtime R+study; default calibrated)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="requests per batch, 1 to 1,000,000 (default 8)"
    )
    parser.add_argument(
        "--tick",
        type=int,
        default=60,
        metavar="SECONDS",
        help="the daemon's planning interval in the replay, 1 to 86400 (default 60)",
    )
    parser.add_argument(
        "--forecaster",
        default="blend",
        help="forecaster planning sees (forecasts package; default blend)",
    )
    parser.add_argument(
        "--truth-factor",
        type=float,
        default=1.0,
        metavar="X",
        help="runs last X times their estimate (estimator error; up to 100, default 1)",
    )
    parser.add_argument(
        "--duration-noise",
        type=float,
        default=0.0,
        metavar="SIGMA",
        help="log-normal sigma of each run's time around that (0 to 3, default 0)",
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=available_workers(),
        metavar="N",
        help="replays run at once, one process each (default: the CPUs available, "
        f"{available_workers()} here)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON, not a table")  # fmt: skip


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number of processes, at least 1")
    return value


def inputs_from(args: argparse.Namespace) -> ReplayInputs:
    return ReplayInputs(
        tuple(args.jobs), args.jobs_format, args.cluster, tuple(args.intensity),
        parse_time(args.start), args.days, args.requests_per_job, args.time_scale, args.model,
        _runtime(args), args.batch_size, args.tick, args.forecaster, args.truth_factor,
        args.duration_noise,
    )  # fmt: skip


def _runtime(args: argparse.Namespace) -> str:
    """The jobs' runtime profile, with the study's power curve when ``--power-model study``."""
    if args.power_model == "study" and not args.runtime.lower().endswith(STUDY_SUFFIX):
        return f"{args.runtime}{STUDY_SUFFIX}"
    return str(args.runtime)


@contextmanager
def progress(
    runs: Sequence[PolicySpec], label: str, setup: ReplaySetup
) -> Iterator[tuple[RunProgress, Callable[[str], None]]]:
    """A rich progress bar on stderr when it is a TTY, over all ``runs`` (each advances by its
    replay clock), and a way to say what is left once they are done; no-ops otherwise. On
    stderr, so that ``--json > out.json`` still shows progress and stdout holds only results."""
    if not sys.stderr.isatty():
        yield (lambda index, now: None), (lambda text: None)
        return
    from rich.console import Console
    from rich.progress import Progress

    span = (setup.end - setup.start).total_seconds()
    done = [0.0] * len(runs)
    with Progress(transient=True, console=Console(stderr=True)) as bar:
        overall = bar.add_task(label, total=len(runs) * span)

        def advance(index: int, now: datetime) -> None:
            done[index] = min(max((now - setup.start).total_seconds(), 0.0), span)
            bar.update(overall, completed=sum(done),
                       description=f"{label} {runs[index].label}")  # fmt: skip

        def status(text: str) -> None:
            bar.update(overall, description=f"{label}: {text}")

        yield advance, status


def check_policies(specs: Sequence[PolicySpec]) -> None:
    """Build each policy once so that a bad name or parameter fails before any replay."""
    for spec in specs:
        try:
            get_policy(spec.name, **spec.params)
        except (PoliciesError, TypeError, ValueError) as exc:  # a policy registered elsewhere
            raise ReplayInputError(f"--policy {spec.label}: {exc}", field="--policy") from exc


def check_grid(base: PolicySpec, grid: Sequence[dict[str, Any]]) -> None:
    """``carbond tune``'s check: ``base`` (what ``--policy`` gave) first, then each ``--grid``
    value on it, named as the grid gave it (``--grid nokey=1: ...``; ``--policy
    carbon-window:nokey=1`` named an option and a policy the operator never wrote), then
    each combination of them (``--grid a=1 b=2: ...``)."""
    check_policies([base])
    values = {(key, repr(value)): value for combo in grid for key, value in combo.items()}
    settings = [{key: value} for (key, _), value in values.items()]
    settings += [combo for combo in grid if len(combo) > 1]
    for setting in settings:
        try:
            get_policy(base.name, **base.params, **setting)
        except (PoliciesError, TypeError, ValueError) as exc:
            named = " ".join(f"{key}={value}" for key, value in setting.items())
            raise ReplayInputError(f"--grid {named}: {exc}", field="--grid") from exc


# The daemon's per-job warnings that a replay's results count: `deadline_missed` is logged for
# each job that runs on past its deadline, in each replay, and is the `misses` column; logged
# too, thousands of lines for a week of an overloaded cluster buried the table.
_COUNTED_EVENTS = frozenset({"deadline_missed"})


def _drop_counted(
    _logger: object, _method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    if event.get("event") in _COUNTED_EVENTS:
        raise structlog.DropEvent
    return event


def quiet_logs() -> None:
    """Only warnings and errors, on stderr, less the per-job ones the results count: the
    daemon's per-job events would drown the results. Loggers are not cached, so a caller (or a
    test) can reconfigure structlog afterwards."""
    configure_logging(level="WARNING")
    processors = structlog.get_config()["processors"]
    structlog.configure(processors=[_drop_counted, *processors], cache_logger_on_first_use=False)


def print_notes(setup: ReplaySetup, shown: set[str] | None = None) -> None:
    """The input files' problems that the replay worked around, on stderr (JSON stays clean),
    each once (``shown``: those printed before), their control characters escaped: a file's
    zone name was written raw, and its escape sequences drove the terminal."""
    shown = set() if shown is None else shown
    for text in setup.notes:
        if text not in shown:
            note(text)  # guarded: a full stderr loses the line, not the replay
            shown.add(text)


def parse_slacks(text: str, *, several: bool) -> list[float]:
    """``--slack``: one duration, or for ``replay`` a comma list of different ones."""
    parts = text.split(",")
    if len(parts) > 1 and not several:
        raise ReplayInputError(
            "--slack: tune sweeps one slack (replay takes a comma list)", field="--slack"
        )
    try:
        slacks = [parse_duration_s(part) for part in parts]
    except ReplayInputError as exc:
        raise ReplayInputError(f"--slack: {exc}", field="--slack") from None
    for k, slack_s in enumerate(slacks):
        if slack_s in slacks[:k]:
            raise ReplayInputError(
                f"--slack: {parts[k]!r} is a slack given before", field="--slack"
            )
    return slacks
