"""The ledger :mod:`bench.bench_relearn` times a restart on: one the daemon wrote. A real
:class:`~daemon.service.Service` (run-now) runs :data:`TEMPLATE`'s jobs to their ends on a
simulated clock: on a Slurm region whose stand-in executor reports each run's energy as
``sacct`` does (several models and GPU types, one run failing), and on a node whose GPU is
metered by the simulated backend (outcome rows with power curves). The template's rows (jobs,
transitions, decisions, runs, outcomes) are then copied until the ledger holds the jobs asked
for, each copy under new job ids and with its times moved past the previous copy's
(:func:`build_ledger`: a fast fill, every row one the daemon wrote; the decisions'
alternatives and the outcomes' details are copied as they are)."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from daemon.gpu import GpuMonitor, SimulatedGpuBackend
from daemon.gpu.factory import simulated_spec
from daemon.intensity.providers import EmbeddedIntensity
from daemon.inventory import build_inventory
from daemon.ledger import Ledger
from daemon.ledger.values import dt, req_dt, ts
from daemon.measurement import JobMeasurement
from daemon.planning import job_spec
from daemon.queue.ingest import Queue
from daemon.service import Service
from daemon.settings import GpuSettings, RegionSettings, Settings, SlurmRegionSettings
from daemon.testing import FakeClock, RecordingExecutor
from policies import get_policy
from policies.candidates import estimate_on
from policies.footprint import DEFAULT_GPU_CATALOG

__all__ = ["REGIONS", "TEMPLATE", "build_ledger", "connection", "relearn_service"]

A100, T4 = "A100-80GB", "T4"
HPC = RegionSettings(name="hpc", zone="CA-QC", executor="slurm", gpus=(A100, A100, T4, T4),
                     slurm=SlurmRegionSettings(partition="alpha"))  # fmt: skip
NODE = RegionSettings(name="node", zone="CA-QC", executor="local", gpus=(A100,))
REGIONS = (HPC, NODE)
# (region, model, GPU type, requests, reported energy / raw estimate (None: metered here),
#  run time / planned, exit code)
TEMPLATE: tuple[tuple[str, str, str, int, float | None, float, int], ...] = (
    ("hpc", "llama-3.1-8b", A100, 1024, 1.3, 1.1, 0),
    ("hpc", "llama-3.2-3b", T4, 256, 0.8, 0.9, 0),
    ("node", "llama-3.1-8b", A100, 1024, None, 1.2, 0),
    ("hpc", "llama-3.1-8b", A100, 512, 1.25, 1.05, 0),
    ("hpc", "llama-3.2-1b", T4, 512, 1.1, 1.0, 0),
    ("hpc", "llama-3.1-8b", A100, 1024, 1.4, 0.5, 1),  # failed: measured, teaches nothing
    ("node", "llama-3.1-8b", A100, 2048, None, 1.15, 0),
    ("hpc", "llama-3.2-3b", A100, 768, 0.9, 1.3, 0),
)
TABLES = ("jobs", "transitions", "decisions", "runs", "outcomes")
TIME_COLUMNS = frozenset({"submitted_at", "deadline", "updated_at", "cancel_requested_at", "at",
                          "planned_start", "launched_at", "started_at", "finished_at",
                          "recorded_at"})  # fmt: skip
SERIAL_COLUMNS = frozenset({"seq"})  # SQLite numbers the copies itself


def relearn_service(
    state: Path, ledger: Ledger, clock: FakeClock
) -> tuple[Service, JobMeasurement]:
    """A run-now service on :data:`REGIONS`: the Slurm stand-in reports energy, the node's GPU
    is metered by the simulated backend (1.2 x its catalog power) on ``clock``."""
    monotonic_s = clock.monotonic()

    backend = SimulatedGpuBackend([simulated_spec(DEFAULT_GPU_CATALOG.get(A100))],
                                  true_power_factor=1.2, clock=monotonic_s)  # fmt: skip
    backend.start()
    monitor = GpuMonitor(backend, GpuSettings(), clock=monotonic_s, sample=False)
    measurement = JobMeasurement(monitor, lifetime_years=5.0, index_of={"node/0": 0})
    service = Service(
        settings=Settings(state_dir=state, regions=REGIONS),
        ledger=ledger,
        queue=Queue(state, ledger, known_regions=[r.name for r in REGIONS]),
        executors={e.name: e for e in (RecordingExecutor("local"), RecordingExecutor("slurm"))},
        inventory=build_inventory(REGIONS),
        intensity=EmbeddedIntensity(),
        policy=get_policy("run-now"),
        measurement=measurement,
    )
    return service, measurement


def _run_template(state: Path) -> None:
    """Run :data:`TEMPLATE`'s jobs one after another to their ends (ledger in ``state``)."""
    clock = FakeClock()
    ledger = Ledger.open(state / "ledger.db", durable=False)
    service, measurement = relearn_service(state, ledger, clock)
    slurm = service.executors["slurm"]
    assert isinstance(slurm, RecordingExecutor)
    devices = {gpu.device.gpu.name: gpu.device for gpu in service.inventory}
    try:
        service.start(clock())
        for n, (region, model, gpu, requests, factor, longer, exit_code) in enumerate(TEMPLATE):
            job_id = f"t{n}"
            line = {"id": job_id, "model": model, "requests": requests, "batch_size": 8,
                    "regions": [region], "gpu_types": [gpu], "command": ["serve"]}  # fmt: skip
            with service.queue.path.open("a") as queue:
                queue.write(json.dumps(line) + "\n")
            service.tick(clock())
            decision = ledger.latest_decision(job_id)
            assert decision is not None and decision.expected_duration_s, decision
            raw = estimate_on(job_spec(ledger.job(job_id)), devices[gpu])
            slurm.reported_power_w = None if factor is None else factor * raw.mean_power_w
            end = clock.advance(decision.expected_duration_s * longer)
            executor = service.executors["slurm" if factor is not None else "local"]
            assert isinstance(executor, RecordingExecutor)
            executor.finish(job_id, end, exit_code)
            service.tick(clock.advance(1.0))
            assert ledger.job(job_id).state == ("failed" if exit_code else "succeeded")
    finally:
        service.close()
        measurement.close()
        ledger.close()


def build_ledger(path: Path, jobs: int, *, distinct: bool = False, first: int = 0) -> None:
    """A ledger at ``path`` with ``jobs`` finished jobs: the template's, copied (module
    docstring). ``distinct``: each copy's requests ask for ``copy`` more requests, so no copy's
    requests are another's (their measured energy stays the template's). ``first``: the jobs
    the ledger already holds (built so): only the later ones are added."""
    with tempfile.TemporaryDirectory() as tmp:
        _run_template(Path(tmp))
        with Ledger.open_readonly(Path(tmp) / "ledger.db") as template:
            rows = {table: template.rows(table) for table in TABLES}
    Ledger.open(path, durable=False).close()  # the schema, as the daemon migrates it
    by_job: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for table, table_rows in rows.items():
        for row in table_rows:
            by_job[row["job_id"]][table].append(row)
    order = [row["job_id"] for row in rows["jobs"]]
    times = [moment for table_rows in rows.values() for row in table_rows
             for name, value in row.items() if name in TIME_COLUMNS
             if (moment := dt(value)) is not None]  # fmt: skip
    span = max(times) - min(times) + timedelta(seconds=1)  # each copy after the previous
    inserts = {table: _insert(table, rows[table][0]) for table in TABLES}
    with connection(path) as db:
        for start in range(first, jobs, 5_000):
            batch: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
            for i in range(start, min(jobs, start + 5_000)):
                copy, template_id = divmod(i, len(order))
                shift, job_id = span * copy, f"c{copy}-{order[template_id]}"
                for table, table_rows in by_job[order[template_id]].items():
                    more = copy if distinct else 0
                    batch[table].extend(_moved(row, job_id, shift, more) for row in table_rows)
            for table in TABLES:  # parents first
                db.executemany(inserts[table], batch[table])
            db.commit()


@contextmanager
def connection(path: Path) -> Iterator[sqlite3.Connection]:
    """The SQLite ledger at ``path``, opened without syncing (a fill, not the daemon's)."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA synchronous = OFF")
        yield db
    finally:
        db.close()


def _insert(table: str, row: dict[str, Any]) -> str:
    names = [name for name in row if name not in SERIAL_COLUMNS]
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


def _moved(row: dict[str, Any], job_id: str, shift: timedelta, more: int) -> tuple[Any, ...]:
    """``row`` of a copy: under ``job_id`` (its stored request too, asking for ``more``
    requests), its times ``shift`` later."""
    values = []
    for name, value in row.items():
        if name in SERIAL_COLUMNS:
            continue
        if name == "job_id":
            values.append(job_id)
        elif name in TIME_COLUMNS and value is not None:
            values.append(_later(value, shift))
        elif name == "spec_json":
            spec = json.loads(value)
            spec["id"] = job_id
            spec["requests"] += more
            if spec.get("deadline"):
                spec["deadline"] = _later(spec["deadline"], shift)
            values.append(json.dumps(spec))
        else:
            values.append(value)
    return tuple(values)


def _later(text: str, shift: timedelta) -> str:
    moved = ts(req_dt(text) + shift)
    assert moved is not None
    return moved
