"""Simulated GPUs: the NVML backend running on the fake NVML, with power from utilisation.

Each device draws ``true_power_factor × (idle_w + (tdp_w − idle_w) × utilisation)``, the same
utilisation model the estimator uses, so a machine without GPUs runs the whole daemon with
measurements that behave like real ones (exact energy counter, sampled power, a fan, clocks).
``true_power_factor`` > 1 makes the hardware draw more than the catalog says (1.3 = 30 % above),
which is what recalibration must learn.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from daemon.gpu.backend import GpuDevice, GpuReading
from daemon.gpu.errors import GpuError
from daemon.gpu.fake_nvml import FakeGpu, FakeNvml
from daemon.gpu.nvml import NvmlBackend
from daemon.gpu.power_curve import PowerCurve

__all__ = ["SimulatedGpuBackend", "SimulatedGpuSpec"]

_AMBIENT_C = 30.0
_HOT_DELTA_C = 45.0


@dataclass(frozen=True, slots=True)
class SimulatedGpuSpec:
    """A simulated device: catalog name, idle and TDP power (W), memory (bytes)."""

    name: str
    idle_power_w: float
    tdp_w: float
    memory_total_bytes: int
    energy_counter: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.idle_power_w <= self.tdp_w:
            raise GpuError(
                f"simulated GPU {self.name}: need 0 <= idle_power_w <= tdp_w, got "
                f"{self.idle_power_w} and {self.tdp_w}"
            )


class SimulatedGpuBackend:
    """A :class:`~daemon.gpu.backend.GpuBackend` of simulated devices.

    Args:
        specs: one spec per device, in index order.
        true_power_factor: real draw ÷ catalog model draw (> 0).
        clock: monotonic seconds (a fake clock in tests and replay).
    """

    def __init__(
        self,
        specs: Sequence[SimulatedGpuSpec],
        *,
        true_power_factor: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if true_power_factor <= 0:
            raise GpuError(f"true_power_factor must be > 0, got {true_power_factor}")
        self._specs = tuple(specs)
        self._factor = true_power_factor
        self._clock = clock
        now_s = clock()
        self._fake = FakeNvml(
            [
                FakeGpu(
                    power=PowerCurve(now_s, self._power_w(spec, 0.0)),
                    name=spec.name,
                    uuid=f"GPU-5170{index:04d}-0000-4000-8000-000000000000",
                    memory_total_bytes=spec.memory_total_bytes,
                    power_limit_w=spec.tdp_w,
                    temperature_c=round(_AMBIENT_C),
                    fan_pct=30,
                    energy_counter=spec.energy_counter,
                )
                for index, spec in enumerate(self._specs)
            ],
            clock,
        )
        self._nvml = NvmlBackend(self._fake, clock=clock, name="simulated")

    @property
    def name(self) -> str:
        return "simulated"

    @property
    def true_power_factor(self) -> float:
        return self._factor

    def start(self) -> None:
        self._nvml.start()

    def close(self) -> None:
        self._nvml.close()

    def devices(self) -> tuple[GpuDevice, ...]:
        return self._nvml.devices()

    def read(self, index: int) -> GpuReading:
        return self._nvml.read(index)

    def spec(self, index: int) -> SimulatedGpuSpec:
        """What device ``index`` was built as (its power and memory stay so).

        Raises:
            GpuError: no such device.
        """
        return self._device(index)[1]

    def now_s(self) -> float:
        """The backend's clock (monotonic seconds)."""
        return self._clock()

    def set_utilisation(
        self, index: int, utilisation: float, *, since_s: float | None = None
    ) -> None:
        """Load device ``index`` at ``utilisation`` (0..1) from now on, or from ``since_s`` in
        the past (a job that ended between two reads): the change then dates back to
        ``since_s`` or to the device's last query, whichever is later, so nothing already read
        is rewritten.

        Raises:
            GpuError: no such device or utilisation outside 0..1.
        """
        if not 0.0 <= utilisation <= 1.0:
            raise GpuError(f"GPU {index}: utilisation must be within 0..1, got {utilisation}")
        gpu, spec = self._device(index)
        now_s = self._clock()
        power_w = self._power_w(spec, utilisation)
        if since_s is None or since_s >= now_s:
            gpu.power.step(now_s, power_w)
        else:
            gpu.power.step_back(max(since_s, gpu.last_query_s, gpu.power.start_s), power_w)
        gpu.utilisation_pct = round(100 * utilisation)
        gpu.memory_utilisation_pct = round(60 * utilisation)
        gpu.memory_used_bytes = round(spec.memory_total_bytes * 0.9 * utilisation)
        gpu.temperature_c = round(_AMBIENT_C + _HOT_DELTA_C * utilisation)
        gpu.fan_pct = round(30 + 60 * utilisation)

    def lose(self, index: int) -> None:
        """Make device ``index`` fall off the bus now (every later query: GPU is lost)."""
        gpu, _ = self._device(index)
        gpu.lost_at_s = self._clock()

    def true_energy_j(self, index: int) -> float:
        """The exact energy device ``index`` has drawn since the backend was built (J)."""
        gpu, _ = self._device(index)
        return gpu.power.energy_j(self._clock())

    def drawn_j(self, index: int, from_s: float, to_s: float) -> float:
        """The exact energy device ``index`` drew from ``from_s`` to ``to_s`` (J; backend
        clock), as its counter reports it."""
        gpu, _ = self._device(index)
        return gpu.power.energy_j(to_s) - gpu.power.energy_j(from_s)

    def _device(self, index: int) -> tuple[FakeGpu, SimulatedGpuSpec]:
        if not 0 <= index < len(self._specs):
            raise GpuError(f"GPU {index}: no such simulated device (have {len(self._specs)})")
        return self._fake.gpus[index], self._specs[index]

    def _power_w(self, spec: SimulatedGpuSpec, utilisation: float) -> float:
        return self._factor * (spec.idle_power_w + (spec.tdp_w - spec.idle_power_w) * utilisation)
