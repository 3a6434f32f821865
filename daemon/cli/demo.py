"""The demo: the real daemon on the paper's simulated setup, driven by an accelerated clock.

Everything is embedded, nothing outside the repository is needed:

- regions (the paper's setup, simulated GPUs): one T4 in Quebec (``CA-QC``), two RTX 6000 Ada
  in California (``US-CAL-CISO``) and two in Utah/PacifiCorp East (``US-NW-PACE``);
- intensity: the daemon's embedded synthetic diurnal curve per zone
  (:class:`daemon.intensity.providers.EmbeddedIntensity`, an LCA average-signal stand-in);
- a handful of jobs, appended to ``queue.jsonl`` with the same locked append as
  ``carbond submit``, some of them later in the run;
- the simulated executor (jobs end after their estimated duration).

The same :class:`daemon.service.Service` the daemon runs is built by
:func:`daemon.assemble.build_daemon` and ticked with a simulated clock from
:data:`DEMO_START` in steps of ``tick_s`` until every job is final. The baseline is the same
jobs through the same daemon with the ``run-now`` policy: each job at once on the fastest free
GPU that fits, carbon ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from daemon.assemble import build_daemon
from daemon.errors import UsageError
from daemon.ledger import Ledger
from daemon.queue import QUEUE_NAME, append_line
from daemon.settings import (
    IntensitySettings,
    MetricsSettings,
    PolicySettings,
    RegionSettings,
    Settings,
)
from daemon.statedir import LEDGER_NAME

__all__ = [
    "DEMO_JOBS",
    "DEMO_REGIONS",
    "DEMO_START",
    "DemoJob",
    "DemoResult",
    "demo_settings",
    "refuse_used_state_dir",
    "run_demo",
]

FINAL_STATES: Final = frozenset({"succeeded", "failed", "cancelled", "expired"})

# A Monday 00:00 UTC (evening in the three zones): clean hours lie ahead.
DEMO_START: Final = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)

DEMO_REGIONS: Final = (
    RegionSettings(name="qc", zone="CA-QC", executor="simulated", gpus=("T4",)),
    RegionSettings(
        name="ciso", zone="US-CAL-CISO", executor="simulated", gpus=("RTX6000-Ada",) * 2
    ),
    RegionSettings(name="pace", zone="US-NW-PACE", executor="simulated", gpus=("RTX6000-Ada",) * 2),
)

# (submitted after s, queue record): ids are fixed so the output is comparable run to run.
DEMO_JOBS: Final[tuple[tuple[float, dict[str, Any]], ...]] = (
    (0, {"id": "chat-eval-1b", "model": "llama-1b", "requests": 400, "deadline": "+12h"}),
    (0, {"id": "summaries-3b", "model": "llama-3b", "requests": 600, "input_tokens": 1024,
         "deadline": "+24h"}),
    (0, {"id": "urgent-1b", "model": "llama-1b", "requests": 50, "deadline": "+1h"}),
    (0, {"id": "nightly-7b", "model": "llama-7b", "requests": 300, "deadline": "+10h"}),
    (1800, {"id": "ciso-only-3b", "model": "llama-3b", "requests": 300, "regions": ["ciso"],
            "deadline": "+20h"}),
    (3600, {"id": "bulk-8b", "model": "llama-8b", "requests": 800, "batch_size": 8,
            "deadline": "+36h"}),
    (7200, {"id": "late-1b", "model": "llama-1b", "requests": 200, "deadline": "+6h"}),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DemoJob:
    """One job's story: the decision that started it, how it ended, and its gCO2e in the
    ``run-now`` baseline run (``run_now_total_g``)."""

    job_id: str
    model: str
    state: str
    policy: str | None
    region: str | None
    gpu: str | None
    reason: str
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expected_total_g: float | None
    run_now_total_g: float | None

    @property
    def waited_s(self) -> float | None:
        """Seconds from submission to start (None: never started)."""
        if self.started_at is None:
            return None
        return (self.started_at - self.submitted_at).total_seconds()


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo did; grams are expected gCO2e (operational + embodied)."""

    policy: str
    jobs: tuple[DemoJob, ...]
    simulated_s: float
    ticks: int
    state_dir: Path
    # the state dirs of the policy's run and of the run-now baseline (one: run-now's own),
    # each one `carbond jobs --state-dir` reads
    run_dirs: tuple[Path, ...]

    @property
    def total_g(self) -> float:
        """Expected gCO2e of the jobs as carbond ran them."""
        return sum(j.expected_total_g or 0.0 for j in self.jobs if j.started_at is not None)

    @property
    def run_now_total_g(self) -> float:
        """Expected gCO2e of the same jobs under ``run-now`` (the baseline run)."""
        return sum(j.run_now_total_g or 0.0 for j in self.jobs if j.started_at is not None)

    @property
    def saved_g(self) -> float:
        """gCO2e saved against the run-now baseline."""
        return self.run_now_total_g - self.total_g


def demo_settings(state_dir: Path, policy: str = "carbon-window") -> Settings:
    """The embedded configuration: paper regions, simulated GPUs, embedded intensity."""
    return Settings(
        state_dir=state_dir,
        regions=DEMO_REGIONS,
        policy=PolicySettings(name=policy),
        intensity=IntensitySettings(source="embedded"),
        metrics=MetricsSettings(port=0),
    )


def run_demo(
    state_dir: Path,
    *,
    policy: str = "carbon-window",
    tick_s: float = 300.0,
    max_simulated_s: float = 4 * 86400.0,
    progress: Callable[[str, float], None] | None = None,
) -> DemoResult:
    """Run the demo jobs through the daemon twice: with ``policy`` and with ``run-now``.

    Each run has its own state dir under ``state_dir`` (``<policy>/`` and ``run-now/``). The
    ``run-now`` run is the baseline: every job at once on the fastest free GPU that fits.

    Args:
        policy: the planner (a registered name; settings validation refuses any other).
        tick_s: simulated seconds per service tick.
        max_simulated_s: stop even if some job is not final (it then shows its state).
        progress: called as ``progress(policy, simulated_s)`` after each tick.

    Raises:
        UsageError: ``state_dir`` already holds a run of either (:func:`refuse_used_state_dir`).
    """
    refuse_used_state_dir(state_dir, policy)
    name, jobs, simulated_s, ticks = _simulate(
        state_dir / policy, policy, tick_s, max_simulated_s, progress
    )
    run_dirs: tuple[Path, ...] = (state_dir / policy,)
    if name == "run-now":
        baseline = jobs
    else:
        run_dirs += (state_dir / "run-now",)
        baseline = _simulate(run_dirs[-1], "run-now", tick_s, max_simulated_s, progress)[1]
    run_now_g = {job.job_id: job.expected_total_g for job in baseline}
    jobs = tuple(replace(job, run_now_total_g=run_now_g.get(job.job_id)) for job in jobs)
    return DemoResult(name, jobs, simulated_s, ticks, state_dir, run_dirs)


def refuse_used_state_dir(state_dir: Path, policy: str) -> None:
    """Refuse a ``state_dir`` whose ``<policy>/`` or ``run-now/`` an earlier demo used.

    The demo's jobs have fixed ids, so in a ledger that has them already every line is a
    resubmission the daemon ignores: the demo would read the earlier run back (in a few ticks,
    under this run's ``tick_s`` and policy) and print it as a new one.

    Raises:
        UsageError: naming the directory that holds a queue file or a ledger.
    """
    for run in dict.fromkeys((policy, "run-now")):
        used = [name for name in (QUEUE_NAME, LEDGER_NAME) if (state_dir / run / name).exists()]
        if used:
            raise UsageError(
                f"--state-dir {state_dir}: {state_dir / run} already holds an earlier demo's "
                f"{' and '.join(used)}, which this one would print again as its own run; "
                "remove it or give another --state-dir"
            )


def _simulate(
    state_dir: Path,
    policy: str,
    tick_s: float,
    max_simulated_s: float,
    progress: Callable[[str, float], None] | None,
) -> tuple[str, tuple[DemoJob, ...], float, int]:
    state_dir.mkdir(parents=True, exist_ok=True)
    now = DEMO_START

    def simulated_monotonic_s() -> float:  # simulated GPUs follow the simulated clock
        return (now - DEMO_START).total_seconds()

    daemon = build_daemon(demo_settings(state_dir, policy), gpu_clock=simulated_monotonic_s)
    try:
        service = daemon.service
        service.start(now)
        pending = sorted(DEMO_JOBS, key=lambda item: item[0])
        ticks = 0
        while (now - DEMO_START).total_seconds() <= max_simulated_s:
            elapsed = (now - DEMO_START).total_seconds()
            while pending and pending[0][0] <= elapsed:
                record = dict(pending.pop(0)[1])
                record["command"] = ["demo-inference", "--job", record["id"]]  # simulated
                append_line(state_dir / QUEUE_NAME, record)
            service.tick(now)
            ticks += 1
            if progress is not None:
                progress(service.policy.name, elapsed)
            if not pending and _all_final(daemon.ledger):
                break
            now += timedelta(seconds=tick_s)
        simulated_s = (now - DEMO_START).total_seconds()
        return service.policy.name, _stories(daemon.ledger), simulated_s, ticks
    finally:
        daemon.close()


def _all_final(ledger: Ledger) -> bool:
    counts = ledger.counts_by_state()
    return sum(counts.values()) == len(DEMO_JOBS) and set(counts) <= FINAL_STATES


def _stories(ledger: Ledger) -> tuple[DemoJob, ...]:
    stories = []
    for job in sorted(ledger.jobs(), key=lambda j: (j.submitted_at, j.job_id)):
        decision = ledger.latest_decision(job.job_id)
        run = ledger.run(job.job_id)
        started = (run.started_at or run.launched_at) if run is not None else None
        stories.append(
            DemoJob(
                job_id=job.job_id,
                model=job.request.model or "",
                state=job.state,
                policy=decision.policy if decision else None,
                region=decision.region if decision else None,
                gpu=decision.gpu if decision else None,
                reason=decision.reason if decision else "",
                submitted_at=job.submitted_at,
                started_at=started,
                finished_at=run.finished_at if run is not None else None,
                expected_total_g=decision.expected_total_g if decision else None,
                run_now_total_g=None,
            )
        )
    return tuple(stories)
