"""Restart relearning on a large ledger: what ``Service.start`` spends relearning the
recalibration factors (:mod:`daemon.learning.factors`) from N finished jobs with measured energy,
before the daemon tells systemd it is ready (``TimeoutStartSec=60s`` in
``systemd/carbond.service``).

The ledger is one the daemon wrote (:mod:`bench.relearn_ledger`). A real
:class:`~daemon.service.Service` (run-now) runs a template of jobs to their ends on a simulated
clock: on a Slurm region whose stand-in executor reports each run's energy as ``sacct`` does
(several models and GPU types, one run failing), and on a node whose GPU is metered by the
simulated backend (outcome rows with power curves). The template's rows (jobs, transitions,
decisions, runs, outcomes) are then copied until the ledger holds ``--jobs`` finished jobs, each
copy under new job ids and with its times moved past the previous copy's (a fast fill: every row
is one the daemon wrote; the decisions' alternatives and the outcomes' details are copied as
they are).

Then, as a restart does, the ledger is opened afresh and timed: the relearning alone
(:func:`daemon.learning.factors.measured_history` folded by :meth:`Learning.relearn`), and the whole
``Service.start`` (which also re-adopts runs and loads the totals) without a recalibration
checkpoint (the first start after an upgrade or a settings change), CPU (``time.process_time``)
and wall, with the factors learned; and, in a child process that only opens the ledger and
relearns, the memory it takes (peak RSS before and after the relearning).

Then the restart with a checkpoint (:mod:`daemon.learning.checkpoint`): the last start left one
of the N jobs; ``--tail`` more jobs (default 1,000) are copied in after them and the restart is
timed again (:func:`daemon.learning.checkpoint.restore` alone, and the whole ``Service.start``),
each try from that same checkpoint, beside a fold of all N + tail jobs from scratch (once); the
factors must be equal.

``python -m bench relearn`` (100,000 jobs); ``python -m bench.bench_relearn --jobs 10000``.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.relearn_ledger import REGIONS, TEMPLATE, build_ledger, connection, relearn_service
from daemon.inventory import build_inventory
from daemon.learning.checkpoint import restore
from daemon.learning.factors import Learning, measured_history
from daemon.ledger import Ledger
from daemon.logs import configure_logging
from daemon.testing import FakeClock
from policies.footprint.recalibration import Recalibration

__all__ = ["Relearned", "Resumed", "main"]


@dataclass(frozen=True, slots=True)
class Relearned:
    """One timed relearning: runs folded, CPU and wall seconds, and the service's whole start."""

    jobs: int
    folded: int
    cpu_s: float
    wall_s: float
    start_cpu_s: float
    start_wall_s: float
    learning: Learning


@dataclass(frozen=True, slots=True)
class Resumed:
    """One timed restart from a checkpoint of ``jobs`` finished jobs with ``tail`` more after
    it: runs folded from the tail, CPU and wall seconds of the relearning and of the whole
    ``Service.start``, and of a fold of every run from scratch (one try)."""

    jobs: int
    tail: int
    tail_runs: int
    cpu_s: float
    wall_s: float
    start_cpu_s: float
    start_wall_s: float
    scratch_cpu_s: float
    scratch_wall_s: float


def _timed(call: Callable[[], Any]) -> tuple[Any, float, float]:
    """``call()``'s result, CPU seconds and wall seconds."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = call()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def relearn(state: Path, jobs: int, repeat: int = 1) -> Relearned:
    """Time the relearning and the whole ``Service.start`` on the ledger in ``state``, each on a
    freshly opened ledger (as a restart finds it); the best of ``repeat`` tries of each (the
    machine may be shared)."""
    inventory = build_inventory(REGIONS)
    tries = []
    for _ in range(repeat):
        with Ledger.open(state / "ledger.db") as ledger:
            learning = Learning()
            folded, cpu_s, wall_s = _timed(
                lambda: learning.relearn(measured_history(ledger, inventory))  # noqa: B023
            )  # called at once, in this iteration
        tries.append((cpu_s, wall_s, folded, learning))
    cpu_s, wall_s, folded, learning = min(tries, key=lambda t: t[0])
    starts = []
    for _ in range(repeat):
        _set_checkpoint(state / "ledger.db", _NO_CHECKPOINT)  # each start from scratch
        starts.append(_timed_start(state, state / "ledger.db", learning.recalibration))
    start_cpu_s, start_wall_s = min(starts)
    return Relearned(jobs, folded, cpu_s, wall_s, start_cpu_s, start_wall_s, learning)


def _timed_start(state: Path, path: Path, expected: Recalibration) -> tuple[float, float]:
    """CPU and wall seconds of ``Service.start`` on the ledger at ``path``, which must learn
    ``expected``."""
    with Ledger.open(path) as ledger:
        clock = FakeClock()
        service, measurement = relearn_service(state, ledger, clock)
        try:
            _, cpu_s, wall_s = _timed(lambda: service.start(clock()))
            assert service.learning.recalibration == expected
        finally:
            service.close()
            measurement.close()
    return cpu_s, wall_s


_CHECKPOINT_TABLES = ("recalibration_checkpoint", "recalibration_checkpoint_factors")
_NO_CHECKPOINT: dict[str, list[tuple[Any, ...]]] = {table: [] for table in _CHECKPOINT_TABLES}


def _checkpoint(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The checkpoint's rows in the ledger at ``path``."""
    with connection(path) as db:
        return {table: db.execute(f"SELECT * FROM {table}").fetchall()
                for table in _CHECKPOINT_TABLES}  # fmt: skip


def _set_checkpoint(path: Path, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    """Put the checkpoint's rows back as ``rows`` (each try starts from the same one)."""
    with connection(path) as db:
        for table in _CHECKPOINT_TABLES:
            db.execute(f"DELETE FROM {table}")
            if rows[table]:
                marks = ", ".join("?" * len(rows[table][0]))
                db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows[table])
        db.commit()


def resume(state: Path, jobs: int, tail: int, distinct: bool, repeat: int = 1) -> Resumed:
    """Time a restart from the checkpoint of the ledger in ``state`` (its ``jobs`` finished
    jobs, left by the last start) after ``tail`` more jobs were added: the relearning
    (:func:`~daemon.learning.checkpoint.restore`) and the whole ``Service.start``, best of
    ``repeat`` tries, each from that checkpoint; and a fold from scratch of all of them."""
    path = state / "ledger.db"
    saved = _checkpoint(path)
    assert saved["recalibration_checkpoint"], "the last start left no checkpoint"
    build_ledger(path, jobs + tail, distinct=distinct, first=jobs)
    inventory = build_inventory(REGIONS)
    with Ledger.open(path) as ledger:
        scratch = Learning()
        _, scratch_cpu_s, scratch_wall_s = _timed(
            lambda: scratch.relearn(measured_history(ledger, inventory))
        )
    tries, starts = [], []
    for _ in range(repeat):
        _set_checkpoint(path, saved)
        with Ledger.open(path) as ledger:
            config = Learning().recalibration.config
            now = FakeClock()()
            folded, cpu_s, wall_s = _timed(
                lambda: restore(ledger, inventory, config, now)  # noqa: B023
            )  # called at once, in this iteration
            assert folded.from_checkpoint and folded.recalibration == scratch.recalibration
        tries.append((cpu_s, wall_s, folded.tail_runs))
        _set_checkpoint(path, saved)
        starts.append(_timed_start(state, path, scratch.recalibration))
    cpu_s, wall_s, tail_runs = min(tries)
    start_cpu_s, start_wall_s = min(starts)
    return Resumed(jobs, tail, tail_runs, cpu_s, wall_s, start_cpu_s, start_wall_s,
                   scratch_cpu_s, scratch_wall_s)  # fmt: skip


def _relearn_only(state: Path) -> dict[str, float]:
    """In a child process (``--child STATE``): relearn from the ledger in ``state``; the peak
    RSS (MiB) before and after."""
    configure_logging(level="WARNING")
    before = _peak_rss_mib()
    with Ledger.open(state / "ledger.db") as ledger:
        Learning().relearn(measured_history(ledger, build_inventory(REGIONS)))
    return {"before_mib": before, "after_mib": _peak_rss_mib()}


def _peak_rss_mib() -> float:
    """This process's peak RSS (MiB): Linux's ``VmHWM`` (``ru_maxrss`` would count the
    parent's pages from before the ``exec``), else ``ru_maxrss``."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (line,) = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(line.split()[1]) / 1024


def _memory(state: Path) -> dict[str, float]:
    """:func:`_relearn_only` in a fresh process (this one holds the fill's memory)."""
    argv = [sys.executable, "-m", "bench.bench_relearn", "--child", str(state)]
    child = subprocess.run(argv, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(child.stdout)
    return result


def _report(result: Relearned, memory: dict[str, float]) -> list[str]:
    per_row_us = result.cpu_s / result.jobs * 1e6
    lines = [
        f"relearn (best of the tries): {result.folded:,} runs folded from {result.jobs:,} "
        f"finished jobs in {result.cpu_s:.2f} s CPU ({result.wall_s:.2f} s wall): "
        f"{result.jobs / result.cpu_s:,.0f} jobs/s, {per_row_us:.1f} us CPU per job",
        f"Service.start (relearn, adopt, totals) without a checkpoint: "
        f"{result.start_cpu_s:.2f} s CPU ({result.start_wall_s:.2f} s wall)",
        f"peak RSS of a process that opens the ledger and relearns: {memory['after_mib']:.0f} MiB "
        f"({memory['before_mib']:.0f} MiB before relearning)",
    ]
    recalibration = result.learning.recalibration
    for state in sorted(recalibration.factors.values(), key=lambda s: (s.model, s.gpu, s.key)):
        in_use = "in use" if recalibration.in_use(*state.key) else "not in use"
        key = "" if state.coarse else f" ({state.runtime}, {state.precision})"
        lines.append(
            f"  {state.model} on {state.gpu}{key}: {state.samples:,} runs, energy x"
            f"{state.energy_factor:.3f}, duration x{state.duration_factor:.3f} ({in_use})"
        )
    return lines


def _report_resumed(resumed: Resumed) -> list[str]:
    return [
        f"restart with a checkpoint of the {resumed.jobs:,} jobs and {resumed.tail:,} jobs "
        f"after it ({resumed.tail_runs:,} runs folded): relearn {resumed.cpu_s:.3f} s CPU "
        f"({resumed.wall_s:.3f} s wall), Service.start {resumed.start_cpu_s:.3f} s CPU "
        f"({resumed.start_wall_s:.3f} s wall); the same {resumed.jobs + resumed.tail:,} jobs "
        f"folded from scratch: {resumed.scratch_cpu_s:.2f} s CPU "
        f"({resumed.scratch_wall_s:.2f} s wall), the same factors",
    ]


def main(argv: Sequence[str] | None = None) -> Relearned:
    """Build the ledger, time the relearning, print and return it."""
    parser = argparse.ArgumentParser(prog="bench_relearn", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="finished jobs in the ledger")
    parser.add_argument("--repeat", type=int, default=3, help="tries of each timing (best kept)")
    parser.add_argument("--tail", type=int, default=1_000,
                        help="jobs added after the checkpoint before the restart timed with it "
                        "(0: none timed)")  # fmt: skip
    parser.add_argument(
        "--distinct-requests",
        action="store_true",
        help="each copy's requests ask for more requests: no copy's alike",
    )
    args = parser.parse_args(list(argv) if argv is not None else [])
    if args.jobs < len(TEMPLATE):
        parser.error(f"--jobs must be at least {len(TEMPLATE)} (one template)")
    configure_logging(level="WARNING")  # the template's per-job events would drown the figures
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        path, distinct = state / "ledger.db", args.distinct_requests
        _, _, fill_wall_s = _timed(lambda: build_ledger(path, args.jobs, distinct=distinct))
        size_mib = (state / "ledger.db").stat().st_size / 2**20
        shapes = "new requests in every copy" if distinct else "the same requests in every copy"
        print(f"ledger: {args.jobs:,} finished jobs ({len(TEMPLATE)} template runs copied, "
              f"{shapes}), {size_mib:.0f} MiB, filled in {fill_wall_s:.1f} s")  # fmt: skip
        result = relearn(state, args.jobs, max(1, args.repeat))
        memory = _memory(state)
        resumed = None
        if args.tail > 0:
            resumed = resume(state, args.jobs, args.tail, distinct, max(1, args.repeat))
    for line in _report(result, memory) + (_report_resumed(resumed) if resumed else []):
        print(line)
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:  # _memory's child
        print(json.dumps(_relearn_only(Path(sys.argv[2]))), flush=True)
    else:
        main(sys.argv[1:])
