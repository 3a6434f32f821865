"""Small hand-made fixtures for policy tests: forecasts, devices, jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest

from policies import Device, JobSpec
from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG, Workload

NOW = datetime(2023, 6, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FakeForecast:
    """A ZoneIntensity made of a plain array (optionally with a pessimistic bound)."""

    zone: str
    start: datetime
    step_s: int
    values_g_per_kwh: npt.NDArray[np.float64]
    upper_g_per_kwh: npt.NDArray[np.float64] | None = None


def forecast(zone: str, values: list[float], step_s: int = 3600, start: datetime = NOW,
             upper: list[float] | None = None) -> FakeForecast:  # fmt: skip
    """A forecast of ``values`` from ``start``."""
    bound = None if upper is None else np.array(upper, dtype=np.float64)
    return FakeForecast(zone, start, step_s, np.array(values, dtype=np.float64), bound)


def devices(region: str, zone: str, gpu: str, count: int, pue: float = 1.0,
            busy_until: datetime | None = None) -> list[Device]:  # fmt: skip
    """``count`` devices of ``gpu`` in ``region``."""
    spec = DEFAULT_GPU_CATALOG.get(gpu)
    return [Device(f"{region}-{i}", region, zone, spec, pue, busy_until) for i in range(count)]


def job(job_id: str, *, hours: float | None = 12.0, regions: tuple[str, ...] = (),
        requests: int = 256, model: str = "llama-1b", priority: int = 0,
        submitted: datetime = NOW) -> JobSpec:  # fmt: skip
    """A batch job of ``requests`` short chats with a deadline ``hours`` after NOW."""
    deadline = None if hours is None else NOW + timedelta(hours=hours)
    workload = Workload(batch_size=8, input_tokens=1000, output_tokens=200, requests=requests)
    return JobSpec(job_id, DEFAULT_MODEL_CATALOG.get(model), workload, submitted, deadline,
                   regions=regions, priority=priority)  # fmt: skip


@pytest.fixture
def two_regions() -> tuple[list[Device], dict[str, FakeForecast]]:
    """Quebec (clean, flat, T4) and California (dirty now, clean in 6 h, RTX 6000 Ada)."""
    devs = devices("qc", "CA-QC", "T4", 2) + devices("ca", "US-CAL-CISO", "RTX6000-Ada", 2)
    ciso = [400.0] * 6 + [100.0] * 6 + [400.0] * 18
    return devs, {
        "CA-QC": forecast("CA-QC", [30.0] * 30),
        "US-CAL-CISO": forecast("US-CAL-CISO", ciso),
    }
