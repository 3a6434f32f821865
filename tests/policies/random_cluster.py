"""Random but reproducible clusters, queues and forecasts for planner equivalence tests."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

from policies import Decision, Device, JobSpec, PlannedStart
from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG, Workload
from tests.policies.conftest import NOW, FakeForecast

ZONES = ("CA-QC", "US-CAL-CISO", "DE")
GPUS = ("T4", "L4", "A100-40GB", "RTX6000-Ada")
MODELS = ("llama-1b", "llama-3b", "llama-8b")


@dataclass
class World:
    """A cluster that changes between ticks: devices, a queue, forecasts."""

    rng: np.random.Generator
    devices: list[Device] = field(default_factory=list)
    jobs: list[JobSpec] = field(default_factory=list)
    forecasts: dict[str, FakeForecast] = field(default_factory=dict)
    issued: int = 0

    def new_forecasts(self, at: datetime, hedged: bool, skew_s: float = 0.0) -> None:
        """Fresh hourly forecasts for every zone from the hour before ``at`` (``skew_s`` later)."""
        start = at.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1, seconds=-skew_s)
        for k, zone in enumerate(ZONES):
            hours = np.arange(36)
            values = 250 + 150 * np.sin(hours / 24 * 2 * np.pi + k) + self.rng.normal(0, 20, 36)
            upper = values + self.rng.uniform(5, 60, 36) if hedged else None
            self.forecasts[zone] = FakeForecast(zone, start, 3600, values, upper)

    def flatten_forecasts(self) -> None:
        """Every zone's forecast (and bound) the same at every hour, each zone's value one of
        a few, so zones may share one: its slots cost the same but for float noise."""
        for zone, fc in self.forecasts.items():
            value = float(self.rng.choice([31.0, 30.999, 17.3, 123.4]))
            values = np.full(len(fc.values_g_per_kwh), value)
            upper = None if fc.upper_g_per_kwh is None else values + 7.7
            self.forecasts[zone] = replace(fc, values_g_per_kwh=values, upper_g_per_kwh=upper)

    def keep_plans(self, decisions: list[Decision]) -> None:
        """Each held job's plan goes back into its spec for the next tick, as the daemon does
        (the other jobs' specs lose theirs)."""
        plans = {
            d.job_id: PlannedStart(d.chosen.region, d.chosen.gpu, d.chosen.start)
            for d in decisions
            if d.action == "hold" and d.chosen is not None
        }
        self.jobs = [replace(j, planned=plans.get(j.job_id)) for j in self.jobs]

    def add_jobs(self, count: int, at: datetime) -> None:
        """``count`` new jobs submitted at ``at`` with mixed deadlines, sizes and limits."""
        for _ in range(count):
            self.issued += 1
            hours = self.rng.choice([0.3, 1.0, 3.0, 8.0, 20.0, -1.0])
            deadline = None if hours < 0 else at + timedelta(hours=float(hours))
            tp = int(self.rng.choice([1, 1, 1, 2]))
            workload = Workload(8, int(self.rng.integers(200, 2000)),
                                int(self.rng.integers(20, 400)), int(self.rng.integers(8, 4000)),
                                tensor_parallel=tp)  # fmt: skip
            regions: tuple[str, ...] = ()
            if self.rng.random() < 0.4:
                regions = tuple(str(r) for r in self.rng.choice(["r0", "r1", "r2", "r3"], 2))
            self.jobs.append(JobSpec(
                f"j{self.issued}", DEFAULT_MODEL_CATALOG.get(str(self.rng.choice(MODELS))),
                workload, at, deadline, "vllm", regions=regions,
                priority=int(self.rng.random() < 0.1),
            ))  # fmt: skip


def world(seed: int, n_devices: int = 10, n_jobs: int = 40, hedged: bool = True) -> World:
    """A cluster of ``n_devices`` GPUs in four regions (some busy, one unavailable) and a queue."""
    rng = np.random.default_rng(seed)
    w = World(rng)
    for i in range(n_devices):
        region = i % 4
        busy = None
        if rng.random() < 0.3:
            busy = NOW + timedelta(minutes=float(rng.uniform(-10, 200)))
        w.devices.append(Device(
            f"d{i}", f"r{region}", ZONES[region % len(ZONES)],
            DEFAULT_GPU_CATALOG.get(GPUS[int(rng.integers(0, len(GPUS)))]),
            1.0 + 0.1 * region, busy, available=i != 3,
        ))  # fmt: skip
    w.new_forecasts(NOW, hedged)
    w.add_jobs(n_jobs, NOW - timedelta(minutes=5))
    return w
