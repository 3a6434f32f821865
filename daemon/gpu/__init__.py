"""GPUs: discovery and readings (NVML or simulated), the sampler, and energy per job.

Only :mod:`daemon.gpu.nvml` imports ``pynvml``; NVML's mW and mJ become W and J there.
"""

from daemon.gpu.backend import GpuBackend, GpuDevice, GpuReading
from daemon.gpu.curves import DeviceCurve
from daemon.gpu.errors import (
    GpuError,
    GpuLostError,
    GpuNotSupportedError,
    GpuPermissionError,
    NvmlUnavailableError,
)
from daemon.gpu.meter import DeviceEnergy, EnergyMeter, EnergyMethod, JobEnergy
from daemon.gpu.monitor import GpuMonitor, LostGpuReport, measured_run
from daemon.gpu.nvml import NvmlBackend, load_pynvml
from daemon.gpu.sampler import LostGpu, Sampler
from daemon.gpu.simulated import SimulatedGpuBackend, SimulatedGpuSpec

__all__ = [
    "DeviceCurve",
    "DeviceEnergy",
    "EnergyMeter",
    "EnergyMethod",
    "GpuBackend",
    "GpuDevice",
    "GpuError",
    "GpuLostError",
    "GpuMonitor",
    "GpuNotSupportedError",
    "GpuPermissionError",
    "GpuReading",
    "JobEnergy",
    "LostGpu",
    "LostGpuReport",
    "NvmlBackend",
    "NvmlUnavailableError",
    "Sampler",
    "SimulatedGpuBackend",
    "SimulatedGpuSpec",
    "load_pynvml",
    "measured_run",
]
