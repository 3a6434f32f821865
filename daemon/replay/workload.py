"""From request traces to replay jobs: tile or stretch over the span, batch, give deadlines.

1. **Time scale**: arrival offsets are multiplied by ``time_scale`` (2.0 stretches a one-hour
   trace over two hours; 168 stretches it over a week).
2. **Tiling**: the scaled pattern repeats back to back until it covers ``span_s`` (a one-hour
   trace tiled over a week repeats 168 times); arrivals past the span are dropped. A trace
   whose arrivals are all at one instant (one job) is replayed once, and so is a job file
   (``carbond``, pre-batched): its jobs are taken as they are, each once.
3. **Batching**: consecutive requests of one trace form a job of ``requests_per_job``
   requests (the last may be smaller); the job arrives with its last request and asks for the
   mean prompt and output lengths of its requests. Pre-batched (``carbond``) traces keep
   their jobs.
4. **Deadline**: ``arrival + slack + allowance``, where the allowance lets the job complete
   on the slowest GPU type of the cluster that fits it (twice its estimated duration plus two
   planning ticks), so that slack 0 means "run at once" rather than "impossible". The estimate
   is the one the planner and the executor use (:func:`policies.footprint.estimate_interval`:
   the calibrated serving model for vLLM).
5. **Home region**: jobs are spread over the regions in proportion to their GPU counts; each
   job lists its home first and the other regions after it (all are allowed).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from daemon.replay.errors import ReplayInputError
from daemon.replay.traces import IntArray, RequestTrace
from policies import JobSpec
from policies.errors import PoliciesError
from policies.footprint import (
    DEFAULT_MODEL_CATALOG,
    MAX_BATCH_SIZE,
    GpuSpec,
    Workload,
    estimate_interval,
    get_runtime,
)
from policies.footprint.workload import MAX_REQUESTS

__all__ = ["WorkloadOptions", "build_jobs", "tile"]


MAX_TIME_SCALE = 1e9  # times any offset of years 1 to 9999 stays a finite number of seconds


@dataclass(frozen=True, slots=True)
class WorkloadOptions:
    """How traces become jobs (see the module docstring)."""

    start: datetime
    span_s: float
    requests_per_job: int = 1024
    time_scale: float = 1.0
    slack_s: float = 0.0
    model: str = "llama-3b"
    runtime: str = "vllm"
    batch_size: int = 8
    precision: str = "fp16"
    tick_s: float = 300.0

    def validate(self) -> None:
        """Raises ReplayInputError naming the first option out of range."""
        # requests-per-job past int64 was a TypeError traceback, time-scale inf a NumPy warning
        # (1e308, finite, overflowed the offsets: warnings and "inf days"),
        # batch-size had no upper bound (2**70 replayed; a queue line refuses past 1,000,000)
        for name, ok, rule in (
            ("span", self.span_s > 0, "> 0"),
            ("requests-per-job", 1 <= self.requests_per_job <= MAX_REQUESTS,
             f"1 to {MAX_REQUESTS:,}"),
            ("time-scale", 0 < self.time_scale <= MAX_TIME_SCALE,
             f"> 0, at most {MAX_TIME_SCALE:g}"),
            ("slack", 0 <= self.slack_s < math.inf, ">= 0"),
            ("batch-size", 1 <= self.batch_size <= MAX_BATCH_SIZE, f"1 to {MAX_BATCH_SIZE:,}"),
        ):  # fmt: skip
            if not ok:
                raise ReplayInputError(f"--{name} is out of range ({rule})", field=f"--{name}")


MAX_TILED_REQUESTS = 20_000_000  # ~25x a week of Azure's conversation trace at time scale 1


def tile(trace: RequestTrace, span_s: float, time_scale: float) -> RequestTrace:
    """The trace scaled by ``time_scale`` and repeated back to back over ``[0, span_s)``; a
    pre-batched trace (a job file) is not repeated: its jobs within the span, once each
    (until 2026-12-06 a file of ten jobs over an hour replayed 240 jobs over ``--days 1``).

    Raises:
        ReplayInputError: the tiled trace would hold more than :data:`MAX_TILED_REQUESTS`
            requests (a tiny ``--time-scale`` asked for hundreds of GiB).
    """
    offsets = trace.offset_s * time_scale
    gap = offsets[-1] / max(len(offsets) - 1, 1) if len(offsets) > 1 else 1.0
    period = max(offsets[-1] + gap, 1e-3)
    # arrivals all at one instant (one job, or a batch submitted at once) have no pattern to
    # repeat: they were repeated every second (86,400 jobs a day from one) or every 1 ms
    copies = max(1, math.ceil(span_s / period)) if offsets[-1] > 0 else 1
    if trace.prebatched:
        copies = 1
    # the whole copies and the last one's requests before the end of the span (a trace longer
    # than the span was counted whole: a week of 25 million requests refused for one day)
    last_s = span_s - (copies - 1) * period
    kept = (copies - 1) * len(offsets) + int(np.searchsorted(offsets, last_s))
    if kept > MAX_TILED_REQUESTS:
        raise ReplayInputError(
            f"--time-scale {time_scale:g}: the trace repeated over the span would hold "
            f"{kept:,} requests (at most {MAX_TILED_REQUESTS:,}); "
            "raise --time-scale or shorten --days",
            field="--time-scale",
        )
    shifts = period * np.arange(copies, dtype=np.float64)
    tiled = (offsets[None, :] + shifts[:, None]).ravel()
    keep = tiled < span_s

    def repeat(values: IntArray) -> IntArray:
        out: IntArray = np.tile(values, copies)[keep]
        return out

    return RequestTrace(
        trace.source,
        tiled[keep],
        repeat(trace.input_tokens),
        repeat(trace.output_tokens),
        repeat(trace.requests),
        trace.prebatched,
    )


def _batches(trace: RequestTrace, per_job: int) -> tuple[npt.NDArray[np.generic], ...]:
    """Arrival offset, mean input, mean output and request count of each job."""
    if trace.prebatched:
        return trace.offset_s, trace.input_tokens, trace.output_tokens, trace.requests
    n = len(trace)
    starts = np.arange(0, n, per_job)
    counts = np.diff(np.append(starts, n))
    ends = starts + counts - 1
    mean_in = np.add.reduceat(trace.input_tokens, starts) / counts
    mean_out = np.add.reduceat(trace.output_tokens, starts) / counts
    return trace.offset_s[ends], np.rint(mean_in), np.maximum(np.rint(mean_out), 1), counts


def _homes(regions: Sequence[tuple[str, int]]) -> list[str]:
    """A cycle in which each region appears as often as it has GPUs, interleaved."""
    cycle: list[str] = []
    weights = {name: count for name, count in regions if count > 0}
    credit = dict.fromkeys(weights, 0.0)
    total = sum(weights.values())
    for _ in range(total):
        for name in credit:
            credit[name] += weights[name]
        pick = max(credit, key=lambda name: credit[name])
        credit[pick] -= total
        cycle.append(pick)
    return cycle


def _stems(traces: Sequence[RequestTrace]) -> list[str]:
    """Each trace's job id prefix: its file name's last ``_`` part (``conv`` for
    ``AzureLLMInferenceTrace_conv.csv``), its whole file name where that part is another
    trace's too (``conversation_trace``, ``synthetic_trace``), and a count after it where the
    name is too (a trace overlaid on itself): job ids must be unique in the ledger."""
    # a .gz trace's name without both suffixes: AzureLLMInferenceTrace_conv.csv.gz's jobs
    # were conv.csv-000042, the same trace's unpacked conv-000042
    names = [Path(trace.source.removesuffix(".gz")).stem for trace in traces]
    short = [name.rsplit("_", 1)[-1] or "trace" for name in names]
    stems = [
        s if short.count(s) == 1 else (n or "trace") for s, n in zip(short, names, strict=True)
    ]
    seen: Counter[str] = Counter()
    out = []
    for stem in stems:
        seen[stem] += 1
        out.append(stem if seen[stem] == 1 else f"{stem}{seen[stem]}")
    return out


def _past_span(trace: RequestTrace, options: WorkloadOptions) -> str | None:
    """A note on the trace's own rows that arrive past the span (a trace longer than the span,
    or a mistyped year that moved its first arrival far back), left out; None where none is.
    """
    late = int(np.count_nonzero(trace.offset_s * options.time_scale >= options.span_s))
    if not late:
        return None
    rows = "jobs" if trace.prebatched else "requests"
    scale = f" at --time-scale {options.time_scale:g}" if options.time_scale != 1 else ""
    last_days = trace.span_s * options.time_scale / 86400
    return (
        f"{trace.source}: {late:,} of {len(trace):,} {rows} arrive past the replayed span "
        f"(--days {options.span_s / 86400:g} from its first arrival{scale}; the last "
        f"{last_days:,.4g} days after it): left out"
    )


def build_jobs(
    traces: Sequence[RequestTrace],
    options: WorkloadOptions,
    regions: Sequence[tuple[str, int]],
    gpus: Sequence[GpuSpec],
    notes: list[str] | None = None,
) -> list[JobSpec]:
    """Replay jobs from ``traces`` sorted by arrival (see the module docstring).

    ``regions`` are (name, GPU count) pairs; ``gpus`` the cluster's GPU types. How many of a
    trace's own rows arrive past the span, left out, is added to ``notes`` (until 2026-12-06
    they were dropped without a word: a job file with one mistyped early year replayed that
    one job only).

    Raises:
        ReplayInputError: an option is out of range, the model or runtime is unknown (named with
            its option), or the model fits no GPU of the cluster.
    """
    options.validate()
    try:  # the catalog's "unknown model 'nope' (known: ...)" did not say which option
        model = DEFAULT_MODEL_CATALOG.get(options.model)
    except PoliciesError as exc:
        raise ReplayInputError(f"--model {options.model}: {exc}", field="--model") from exc
    try:
        runtime = get_runtime(options.runtime)
    except PoliciesError as exc:
        raise ReplayInputError(f"--runtime {options.runtime}: {exc}", field="--runtime") from exc
    homes = _homes(regions)
    names = [name for name, _ in regions]
    rows: list[tuple[float, str, Workload]] = []
    for trace, stem in zip(traces, _stems(traces), strict=True):
        late = _past_span(trace, options)
        if late is not None and notes is not None:
            notes.append(late)
        arrival, n_in, n_out, count = _batches(
            tile(trace, options.span_s, options.time_scale), options.requests_per_job
        )
        for k in range(len(arrival)):
            workload = Workload(options.batch_size, int(n_in[k]), int(n_out[k]), int(count[k]),
                                options.precision)  # fmt: skip
            rows.append((float(arrival[k]), f"{stem}-{k:06d}", workload))
    rows.sort(key=lambda row: (row[0], row[1]))
    allowance: dict[Workload, float] = {}
    jobs = []
    for i, (offset_s, job_id, workload) in enumerate(rows):
        if workload not in allowance:
            durations = [
                estimate_interval(model, gpu, runtime, workload).duration_s for gpu in gpus
            ]
            fitting = [d for d in durations if math.isfinite(d)]
            if not fitting:
                raise ReplayInputError(
                    f"job {job_id}: {model.name} fits no GPU of the cluster "
                    f"({workload.input_tokens} + {workload.output_tokens} tokens per request)"
                )
            allowance[workload] = 2.0 * max(fitting) + 2.0 * options.tick_s
        arrived = options.start + timedelta(seconds=offset_s)
        try:
            deadline = arrived + timedelta(seconds=options.slack_s + allowance[workload])
        except OverflowError:  # was a traceback (--slack 99999999999999d)
            raise ReplayInputError(
                f"--slack {options.slack_s / 86400:g} days: job {job_id}'s deadline would be "
                "past year 9999",
                field="--slack",
            ) from None
        home = homes[i % len(homes)] if homes else ""
        order = (home, *(name for name in names if name != home)) if home else ()
        jobs.append(JobSpec(job_id, model, workload, arrived, deadline, options.runtime, order))
    return jobs
