"""Parsing replay options (durations, policy specs, parameter grids) and loading the inputs."""

from __future__ import annotations

import itertools
import math
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from daemon.replay.cluster import Cluster, load_cluster
from daemon.replay.driver import ReplaySetup
from daemon.replay.errors import ReplayInputError
from daemon.replay.ledger_jobs import distinct_ids, jobs_from_ledger, note_unfit
from daemon.replay.signals import (
    Gap,
    ReplaySignals,
    forecaster_named,
    join_zones,
    read_intensity,
    refuse_gaps,
)
from daemon.replay.trace_kind import looks_like
from daemon.replay.traces import TRACE_FORMATS, RequestTrace, read_requests
from daemon.replay.workload import WorkloadOptions, build_jobs
from daemon.settings.sections import MAX_INTERVAL_S
from forecasts import IntensitySeries
from policies import JobSpec

__all__ = [
    "JOBS_FORMATS",
    "MAX_GRID_SETTINGS",
    "PolicySpec",
    "ReadInputs",
    "ReplayInputs",
    "build_setup",
    "load_setup",
    "parse_duration_s",
    "parse_grid",
    "parse_policies",
    "parse_time",
    "read_inputs",
]

_T = TypeVar("_T")

JOBS_FORMATS = (*TRACE_FORMATS, "ledger")  # ledger: an operator's own jobs (ledger_jobs)

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration_s(text: str) -> float:
    """``"0"``, ``"90s"``, ``"30m"``, ``"4h"``, ``"1.5d"`` (bare numbers are seconds).

    Raises:
        ReplayInputError: not a duration.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ReplayInputError(f"not a duration: {text!r} (use e.g. 0, 30m, 4h, 1d)")
    return float(match[1]) * _UNITS[match[2] or "s"]


def parse_time(text: str) -> datetime:
    """An RFC 3339 time or a date (``2023-06-05``), read as UTC when it has no offset.

    Raises:
        ReplayInputError: not a time.
    """
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ReplayInputError(f"--start: not a time: {text!r}", field="--start") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(lowered)
        except ValueError:
            continue
    return text.strip()


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A policy name and its parameters."""

    name: str
    params: dict[str, Any]

    @property
    def label(self) -> str:
        """``name`` or ``name:key=value:...``."""
        extra = "".join(f":{k}={v}" for k, v in sorted(self.params.items()))
        return self.name + extra


def parse_policies(text: str) -> list[PolicySpec]:
    """``run-now,carbon-window:herd_penalty=0.1:min_saving=0.05`` -> specs.

    Raises:
        ReplayInputError: an empty name, a parameter without ``=``, a parameter given twice in
            one policy (the later would silently replace the earlier) or a policy given twice
            (the same replay run twice).
    """
    specs: list[PolicySpec] = []
    for item in text.split(","):
        name, *pairs = (part.strip() for part in item.split(":"))
        if not name:
            raise ReplayInputError(f"--policy: empty policy name in {text!r}", field="--policy")
        params: dict[str, Any] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ReplayInputError(
                    f"--policy: expected key=value, got {pair!r}", field="--policy"
                )
            if key in params:
                raise ReplayInputError(
                    f"--policy {item.strip()!r}: {key} given twice", field="--policy"
                )
            params[key] = _value(value)
        spec = PolicySpec(name, params)
        if any(spec.label == other.label for other in specs):
            raise ReplayInputError(f"--policy: {spec.label} given twice", field="--policy")
        specs.append(spec)
    return specs


MAX_GRID_SETTINGS = 1000  # replays one tune may start (a typo in a long grid asked a million)


def parse_grid(items: Sequence[str]) -> list[dict[str, Any]]:
    """``["herd_penalty=0,0.1", "min_saving=0,0.05"]`` -> every combination.

    Raises:
        ReplayInputError: an item without ``=`` or without values, an empty value (``0.1,,0.3``:
            until 2026-12-07 dropped without a word), a key given in two items
            (the later would silently replace the earlier), a value given twice in one
            (the same setting replayed twice), or more than :data:`MAX_GRID_SETTINGS`
            combinations.
    """
    axes: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        texts = values.split(",")
        if not sep or not key or not values.strip():
            raise ReplayInputError(f"--grid: expected key=v1,v2,..., got {item!r}", field="--grid")
        if not all(text.strip() for text in texts):  # was dropped: a setting fewer, no word
            raise ReplayInputError(f"--grid {item!r}: an empty value", field="--grid")
        options = [_value(text) for text in texts]
        if key in axes:
            raise ReplayInputError(f"--grid: {key} given twice (list its values once: "
                                   f"{key}=v1,v2,...)", field="--grid")  # fmt: skip
        seen: list[tuple[bool, Any]] = []  # True == 1, but not as the same setting
        for value in options:
            if (isinstance(value, bool), value) in seen:
                raise ReplayInputError(f"--grid {item!r}: {value!r} given twice", field="--grid")
            seen.append((isinstance(value, bool), value))
        axes[key] = options
    settings = math.prod(len(options) for options in axes.values())
    if settings > MAX_GRID_SETTINGS:
        sizes = " x ".join(f"{len(options)} {key}" for key, options in axes.items())
        raise ReplayInputError(
            f"--grid: {sizes} are {settings:,} settings to replay (at most {MAX_GRID_SETTINGS:,})",
            field="--grid",
        )
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


_EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=14)  # the forecasts' history
_LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=2)  # a replay runs on past its end


@dataclass(frozen=True, slots=True)
class ReplayInputs:
    """What ``carbond replay`` and ``carbond tune`` read from the command line."""

    jobs: tuple[Path, ...]
    jobs_format: str
    cluster: Path
    intensity: tuple[Path, ...]
    start: datetime
    days: float
    requests_per_job: int
    time_scale: float
    model: str
    runtime: str
    batch_size: int
    tick_s: int
    forecaster: str = "blend"
    truth_factor: float = 1.0
    duration_noise: float = 0.0


@dataclass(frozen=True, slots=True)
class ReadInputs:
    """Every input file of a replay, read once: what each slack's replay is built from (until
    2026-12-06 ``--slack 0,4h,12h`` read every trace and intensity file once per slack, ~10 s
    a slack for 2 million requests)."""

    inputs: ReplayInputs
    cluster: Cluster
    files: tuple[tuple[dict[str, IntensitySeries], list[Gap]], ...]  # per --intensity file
    series: dict[str, IntensitySeries]  # the files' zones joined
    traces: tuple[RequestTrace, ...]  # request traces (none for a ledger's jobs)
    ledger_jobs: tuple[JobSpec, ...]  # a ledger's jobs, moved to --start (none for traces)
    notes: tuple[str, ...]


def load_setup(inputs: ReplayInputs, slack_s: float) -> ReplaySetup:
    """Read every input and build the replay (jobs with deadlines ``slack_s`` after arrival).

    Raises:
        ReplayInputError: any bad input, naming the file, line or option.
    """
    return build_setup(read_inputs(inputs), slack_s)


def read_inputs(inputs: ReplayInputs) -> ReadInputs:
    """Check the options and read every input file (cluster, intensity, jobs).

    Raises:
        ReplayInputError: any bad option or file, naming the file, line or option.
    """
    # written so that NaN fails too: `--days nan` used to reach int() and raise ValueError
    if not 0 < inputs.days < math.inf:
        raise ReplayInputError(
            f"--days must be > 0 and finite, got {inputs.days:g}", field="--days"
        )
    if not 0 < inputs.tick_s <= MAX_INTERVAL_S:  # as the daemon's intervals.plan_s
        raise ReplayInputError(
            f"--tick must be from 1 to {MAX_INTERVAL_S:g} seconds", field="--tick"
        )
    # bounded so that a run's simulated length stays a time (1e300 overflowed the clock)
    # one error each, the option as its field (until 2026-12-07 one message naming both)
    if not 0 < inputs.truth_factor <= 100:
        raise ReplayInputError(
            f"--truth-factor must be > 0 and <= 100, got {inputs.truth_factor:g}",
            field="--truth-factor",
        )
    if not 0 <= inputs.duration_noise <= 3:
        raise ReplayInputError(
            f"--duration-noise must be from 0 to 3, got {inputs.duration_noise:g}",
            field="--duration-noise",
        )
    # was an OverflowError traceback (--start 0001-01-01, --days 1e308)
    if inputs.start < _EARLIEST or (_LATEST - inputs.start).total_seconds() < inputs.days * 86400:
        raise ReplayInputError(
            f"--start {inputs.start.date()} --days {inputs.days:g}: the replay and the two "
            "weeks before it must fall within years 1 to 9999"
        )
    forecaster_named(inputs.forecaster)  # before any file is read
    _refuse_unreadable(inputs)
    cluster: Cluster = load_cluster(inputs.cluster)
    notes: list[str] = []
    files: list[tuple[dict[str, IntensitySeries], list[Gap]]] = []
    for path in inputs.intensity:
        gaps: list[Gap] = []
        files.append((read_intensity(path, notes, gaps, cluster.zones()), gaps))
    series = join_zones([found for found, _ in files], notes)
    # a zone missing: refused before the jobs are read
    zones = cluster.zone_regions()
    ReplaySignals([series], cluster.zones(), inputs.forecaster, needed_by=zones,
                  cluster_file=inputs.cluster)  # fmt: skip
    ledger_jobs: list[JobSpec] = []
    traces: list[RequestTrace] = []
    if inputs.jobs_format == "ledger":
        span_s = inputs.days * 86400.0
        ledgers = [
            _hinted(path, "ledger", partial(jobs_from_ledger, path, inputs.start, span_s, notes))
            for path in inputs.jobs
        ]
        for path, ledger in zip(inputs.jobs, ledgers, strict=True):
            note_unfit(path, ledger, cluster.devices(), notes)
        ledger_jobs = distinct_ids(ledgers)
        ledger_jobs.sort(key=lambda job: (job.submitted_at, job.job_id))
    else:
        fmt = inputs.jobs_format
        traces = [_hinted(path, fmt, partial(read_requests, path, fmt)) for path in inputs.jobs]
        notes += [note for trace in traces for note in trace.notes]
    return ReadInputs(
        inputs, cluster, tuple(files), series, tuple(traces), tuple(ledger_jobs), tuple(notes)
    )


def _refuse_unreadable(inputs: ReplayInputs) -> None:
    """Refuse every input file that cannot be opened, all named in one error, before any is
    read: a missing ``--jobs`` file was named only after the cluster and every intensity file
    had been read and checked, and a second missing file only on the next run.

    Raises:
        ReplayInputError: ``OPTION PATH: cannot read (why)`` for each, joined by ``; ``.
    """
    named = [("--cluster", inputs.cluster)]
    named += [("--intensity", path) for path in inputs.intensity]
    named += [("--jobs", path) for path in inputs.jobs]
    problems = []
    for option, path in named:
        why = _unreadable(path)
        if why is not None:
            problems.append(f"{option} {path}: cannot read ({why})")
    if problems:
        raise ReplayInputError("; ".join(problems))


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be opened for reading as a file (None: it can). A FIFO is not
    waited on, and refused: reading it later blocked until something wrote to it (for ever
    with no writer), and a file is read more than once (a wrong format's hint reads it again)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        mode = os.fstat(fd).st_mode
    finally:
        os.close(fd)
    if stat.S_ISDIR(mode):
        return "a directory, not a file"
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "special file")
        return f"a {kind}, not a regular file: save it to a file first"
    return None


_KINDS = {stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device",
          stat.S_IFBLK: "block device"}  # fmt: skip


def _hinted(path: Path, fmt: str, read: Callable[[], _T]) -> _T:
    """``read()`` of the ``--jobs`` file ``path``; its error, where the file looks like
    another ``--jobs-format`` than ``fmt``, says which (an Azure CSV read as the default
    ``carbond`` was "no good row (... not JSON ...)" and nothing more).

    Raises:
        ReplayInputError: what ``read`` raised, with the hint.
    """
    try:
        return read()
    except ReplayInputError as exc:
        hint = looks_like(path, fmt)
        if hint is None:
            raise
        raise ReplayInputError(
            f"{exc.problem}; {hint}", file=exc.file, line=exc.line, field=exc.field,
            zone=exc.zone, job_id=exc.job_id,
        ) from exc  # fmt: skip


def build_setup(read: ReadInputs, slack_s: float) -> ReplaySetup:
    """The replay of inputs ``read`` once, request traces batched into jobs with deadlines
    ``slack_s`` after arrival (a ledger's jobs keep their own), each replay with its own
    signals (their forecasts are memoised as a replay asks for them).

    Raises:
        ReplayInputError: a workload option out of range, the model on no GPU, or intensity
            or a site that does not cover the replay up to the last deadline.
    """
    inputs, cluster, notes = read.inputs, read.cluster, list(read.notes)
    end = inputs.start + timedelta(days=inputs.days)
    zones = cluster.zone_regions()
    signals = ReplaySignals([read.series], cluster.zones(), inputs.forecaster, needed_by=zones,
                            cluster_file=inputs.cluster)  # fmt: skip
    if inputs.jobs_format == "ledger":
        jobs = list(read.ledger_jobs)
    else:
        options = WorkloadOptions(
            inputs.start, inputs.days * 86400.0, inputs.requests_per_job, inputs.time_scale,
            slack_s, inputs.model, inputs.runtime, inputs.batch_size,
            tick_s=float(inputs.tick_s),
        )  # fmt: skip
        regions = [(r.name, r.gpu_count) for r in cluster.regions]
        jobs = build_jobs(list(read.traces), options, regions, cluster.gpu_types(), notes)
    until = max((job.deadline for job in jobs if job.deadline is not None), default=end)
    refuse_gaps(read.files, cluster.zones(), inputs.start - timedelta(days=7), max(end, until))
    signals.covers(inputs.start, end, until)
    cluster.sites_cover(inputs.start, end, until)
    setup = ReplaySetup(
        tuple(jobs), cluster, signals, inputs.start, end, inputs.tick_s,
        truth_factor=inputs.truth_factor, duration_noise=inputs.duration_noise,
    )  # fmt: skip
    notes += cluster.site_notes(inputs.start, timedelta(seconds=setup.horizon_s))
    return replace(setup, notes=tuple(notes))
