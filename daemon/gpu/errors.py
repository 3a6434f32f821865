"""Errors raised by :mod:`daemon.gpu`; every one is a :class:`daemon.errors.DaemonError`.

::

    DaemonError
     └── GpuError                 anything about GPUs and their measurement
          ├── NvmlUnavailableError  no usable NVML: library or driver missing, unofficial bindings
          ├── GpuNotSupportedError  this device does not support the query (e.g. energy counter)
          ├── GpuLostError          the device fell off the bus; it is marked unavailable
          └── GpuPermissionError    NVML refused the query for lack of privileges

NVML's own exceptions are translated at the boundary (:mod:`daemon.gpu.nvml`) with
``raise ... from e``; messages name the device index and the NVML call.
"""

from __future__ import annotations

from daemon.errors import DaemonError

__all__ = [
    "GpuError",
    "GpuLostError",
    "GpuNotSupportedError",
    "GpuPermissionError",
    "NvmlUnavailableError",
]


class GpuError(DaemonError):
    """Root of the GPU errors."""


class NvmlUnavailableError(GpuError):
    """NVML cannot be used at all: bindings missing or unofficial, library or driver not loaded."""


class GpuNotSupportedError(GpuError):
    """The device does not support this query (NVML_ERROR_NOT_SUPPORTED)."""


class GpuLostError(GpuError):
    """The device stopped answering (NVML_ERROR_GPU_IS_LOST); it must be marked unavailable."""

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        super().__init__(message)


class GpuPermissionError(GpuError):
    """NVML refused the query for lack of privileges (NVML_ERROR_NO_PERMISSION)."""
