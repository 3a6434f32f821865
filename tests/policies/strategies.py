"""Hypothesis strategies for small planning rounds: a cluster, a queue, forecasts and ``now``.

Small on purpose (a few devices in three regions, a few jobs): the planners' rules bite on
few jobs competing for few GPUs, and each example stays cheap. Devices of a region share its
zone and PUE (a region is one site); some are busy, some lost; jobs mix deadlines (none,
already impossible, tight, loose), tensor parallelism, allowed regions (one that has no GPU
included), GPU types, memory floors and priorities; some models fit no GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from hypothesis import strategies as st

from policies import Device, JobSpec
from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG, Workload
from tests.policies.conftest import NOW, FakeForecast

__all__ = ["REGIONS", "Round", "forecasts_for", "job_specs", "rounds"]

REGIONS = {"qc": ("CA-QC", 1.0), "ca": ("US-CAL-CISO", 1.2), "de": ("DE", 1.4)}
BUSY_S = (-3600, 0, 600, 3600, 5 * 3600, 30 * 3600)  # 30 h: past the 24 h horizon
GPUS = ("T4", "L4", "A100-40GB", "RTX6000-Ada")
MODELS = ("llama-1b", "llama-3b", "llama-8b")  # and now and then llama-70b: on no GPU alone


@dataclass(frozen=True)
class Round:
    """One planning call's inputs."""

    now: datetime
    jobs: list[JobSpec]
    devices: list[Device]
    forecasts: dict[str, FakeForecast] = field(default_factory=dict)


def _often() -> st.SearchStrategy[bool]:
    """True four times in five."""
    return st.integers(0, 4).map(bool)


@st.composite
def _pool(draw: st.DrawFn, first: int, now: datetime, past_horizon: bool) -> list[Device]:
    """1 to 4 devices of one GPU type in one region, each busy or lost on its own (some busy
    past the planners' 24 h horizon when ``past_horizon``)."""
    region = draw(st.sampled_from(sorted(REGIONS)))
    zone, pue = REGIONS[region]
    gpu = DEFAULT_GPU_CATALOG.get(draw(st.sampled_from(GPUS)))
    out = []
    for i in range(first, first + draw(st.integers(1, 4))):
        ends = BUSY_S if past_horizon else BUSY_S[:-1]
        busy = draw(st.one_of(st.none(), st.sampled_from(ends), st.integers(-3600, 6 * 3600)))
        busy_until = None if busy is None else now + timedelta(seconds=busy)
        available = draw(st.integers(0, 9)) > 0
        out.append(Device(f"d{i}", region, zone, gpu, pue, busy_until, available))
    return out


@st.composite
def job_specs(draw: st.DrawFn, index: int, now: datetime, devices: Sequence[Device]) -> JobSpec:
    """Job ``j{index}``, submitted up to 2 h before ``now``, its limits mostly among
    ``devices``' regions and GPU types."""
    minutes = draw(st.one_of(st.none(), st.integers(-30, 30 * 60)))
    deadline = None if minutes is None else now + timedelta(minutes=minutes)
    workload = Workload(
        batch_size=8,
        input_tokens=draw(st.integers(100, 2000)),
        output_tokens=draw(st.integers(20, 400)),
        requests=draw(st.integers(8, 4000)),
        tensor_parallel=1 if draw(_often()) else draw(st.sampled_from((2, 4))),
    )
    # Limits mostly among the cluster's regions and GPU types ("xx" and a GPU type it lacks
    # now and then), so that most jobs fit somewhere.
    present = sorted({d.region for d in devices})
    regions: tuple[str, ...] = ()
    if draw(st.booleans()):
        some = st.sampled_from(present) if draw(_often()) else st.sampled_from([*REGIONS, "xx"])
        regions = tuple(draw(st.lists(some, min_size=1, max_size=2, unique=True)))
    kinds = sorted({d.gpu.name for d in devices})
    gpu_types: tuple[str, ...] = ()
    if draw(st.integers(0, 3)) == 0:
        some = st.sampled_from(kinds) if draw(_often()) else st.sampled_from(GPUS)
        gpu_types = tuple(draw(st.lists(some, min_size=1, max_size=2, unique=True)))
    model = "llama-70b" if draw(st.integers(0, 9)) == 0 else draw(st.sampled_from(MODELS))
    return JobSpec(
        f"j{index}",
        DEFAULT_MODEL_CATALOG.get(model),
        workload,
        now - timedelta(seconds=draw(st.integers(0, 7200))),
        deadline,
        draw(st.sampled_from(("hf-eager", "vllm"))),
        regions=regions,
        gpu_types=gpu_types,
        min_gpu_memory_gb=0.0 if draw(_often()) else draw(st.sampled_from((24.0, 48.0))),
        priority=draw(st.sampled_from((0, 0, 0, 1))),
    )


@st.composite
def forecasts_for(draw: st.DrawFn, zone: str, now: datetime) -> FakeForecast:
    """A forecast of ``zone`` from the hour before ``now``: 40 hourly values (now and then 3:
    the last value holds after them), or 40 quarter-hourly ones (slots of the planners'
    grid that differ), with a pessimistic bound or not."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    hours = 40 if draw(_often()) else 3
    values = draw(st.lists(st.floats(0.0, 800.0), min_size=hours, max_size=hours))
    upper = None
    if draw(st.booleans()):
        widths = draw(st.lists(st.floats(0.0, 100.0), min_size=hours, max_size=hours))
        upper = np.array(values) + np.array(widths)
    step_s = 3600 if draw(_often()) else 900
    return FakeForecast(zone, start, step_s, np.array(values, dtype=np.float64), upper)


@st.composite
def rounds(
    draw: st.DrawFn, max_pools: int = 3, max_jobs: int = 6, past_horizon: bool = True
) -> Round:
    """A planning round: 1 to ``max_pools`` pools of 1 to 4 devices (two may share a region
    and GPU type: one pool then), 0 to ``max_jobs`` jobs, every zone
    forecast, ``now`` anywhere in an hour (whole seconds or not)."""
    now = NOW + timedelta(seconds=draw(st.integers(0, 3600)),
                          microseconds=draw(st.sampled_from((0, 0, 250_000))))  # fmt: skip
    devices: list[Device] = []
    for _ in range(draw(st.integers(1, max_pools))):
        devices += draw(_pool(len(devices), now, past_horizon))
    n_jobs = draw(st.integers(0, max_jobs))
    jobs = [draw(job_specs(i, now, devices)) for i in range(n_jobs)]
    forecasts = {zone: draw(forecasts_for(zone, now)) for zone, _ in REGIONS.values()}
    return Round(now, jobs, devices, forecasts)
