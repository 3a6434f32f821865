"""Small fixtures for the GPU tests: a settable monotonic clock and fake devices."""

from __future__ import annotations

import pytest

from daemon.gpu.fake_nvml import FakeGpu, FakeNvml
from daemon.gpu.power_curve import PowerCurve


class FakeClock:
    """Monotonic seconds that move only when told to."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def fake_gpu(clock: FakeClock, power_w: float = 100.0, **fields: object) -> FakeGpu:
    """A fake device whose power curve starts now at ``power_w``."""
    return FakeGpu(power=PowerCurve(clock(), power_w), **fields)  # type: ignore[arg-type]


def make_nvml(clock: FakeClock, *gpus: FakeGpu) -> FakeNvml:
    return FakeNvml(list(gpus) or [fake_gpu(clock)], clock)
