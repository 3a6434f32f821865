"""What carbond knows about a GPU, one reading of it, and the backend protocol that gives both.

Units are SI-ish and in the names: W, J, bytes, °C, %, MHz. Time stamps on readings are
``time.monotonic()`` seconds of the backend's clock (for durations, never for calendars).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["GpuBackend", "GpuDevice", "GpuReading"]

_BYTES_PER_GB = 1_000_000_000


@dataclass(frozen=True, slots=True)
class GpuDevice:
    """A GPU as discovered on this node.

    ``energy_counter`` says whether the cumulative energy counter is supported (Volta and newer);
    where it is not, energy is the time integral of sampled power. ``mig_enabled`` is None where
    the device does not support MIG; ``memory_total_bytes`` where it is not told (a MIG-enabled
    GPU's memory to a caller that is not root).
    """

    index: int
    uuid: str
    name: str
    memory_total_bytes: int | None
    power_limit_w: float | None
    mig_enabled: bool | None
    energy_counter: bool

    @property
    def memory_gb(self) -> float | None:
        """Total memory in GB (10^9 bytes), None where not told."""
        return None if self.memory_total_bytes is None else self.memory_total_bytes / _BYTES_PER_GB


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One reading of one GPU at ``monotonic_s``.

    ``energy_j`` is the device's cumulative energy since the backend first read it (monotonic,
    counter wrap and resets already handled), or None where the counter is unsupported. Fields a
    device does not support (fan on passively cooled boards, ...) are None.
    """

    index: int
    monotonic_s: float
    energy_j: float | None
    power_w: float | None
    utilisation_pct: float | None
    memory_used_bytes: int | None
    temperature_c: float | None
    fan_pct: float | None
    sm_clock_mhz: float | None
    memory_clock_mhz: float | None


class GpuBackend(Protocol):
    """Where GPU devices and readings come from: NVML, or the simulated GPUs.

    A backend is created closed; :meth:`start` opens it (e.g. ``nvmlInit``) and :meth:`close`
    releases it. Implementations are thread-safe: the sampler thread and the service both read.
    """

    @property
    def name(self) -> str:
        """Short backend name for logs and ``carbond gpus`` (``nvml``, ``simulated``)."""
        ...

    def start(self) -> None:
        """Open the backend.

        Raises:
            NvmlUnavailableError: the backend cannot be used on this machine.
        """
        ...

    def close(self) -> None:
        """Release the backend; safe to call twice."""
        ...

    def devices(self) -> tuple[GpuDevice, ...]:
        """Every GPU of this node, in index order.

        Raises:
            GpuError: discovery failed.
        """
        ...

    def read(self, index: int) -> GpuReading:
        """Read every supported counter and sensor of device ``index`` now.

        Raises:
            GpuLostError: the device is lost; it will not come back without a reset.
            GpuError: any other failure of the device.
        """
        ...
