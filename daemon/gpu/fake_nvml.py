"""A faithful fake of the ``pynvml`` module (``nvidia-ml-py``) for tests and simulated GPUs.

It has the function names, return units (mW, mJ, bytes, %, °C, MHz), error classes and error
codes of the real bindings, so :class:`daemon.gpu.nvml.NvmlBackend` runs unchanged on it:

- ``nvmlDeviceGetTotalEnergyConsumption`` is an unsigned 64-bit mJ counter: the exact integral of
  the device's :class:`PowerCurve`, plus a settable start value, modulo 2**64 (so it can wrap);
- devices can lack the energy counter, a fan or MIG (``NVMLError_NotSupported``);
- on a MIG-enabled device, utilisation is ``NVMLError_NotSupported`` and the parent's memory
  info ``NVMLError_NoPermission`` unless the caller is privileged (as NVML documents);
- a device can be lost at a given time (every call then raises ``NVMLError_GpuIsLost``);
- ``nvmlInit`` can fail as with no driver (``NVMLError_DriverNotLoaded``) or with any other code
  (NVML documents ``NO_PERMISSION``, no permission to talk to the driver, and ``UNKNOWN``), queries
  can be refused (``NVMLError_NoPermission``), and calls before ``nvmlInit`` raise
  ``NVMLError_Uninitialized``;
- an older driver can lack functions (``NVMLError_FunctionNotFound``, which the bindings raise when
  ``libnvidia-ml`` has no such symbol, e.g. ``nvmlDeviceGetMigMode`` before R450).

Device state is given in W and J (:class:`FakeGpu`); the fake answers in NVML's mW and mJ, as the
hardware does. Time comes from an injected monotonic clock. The error codes and classes are in
:mod:`daemon.gpu.fake_nvml_errors`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from daemon.gpu import fake_nvml_errors
from daemon.gpu.fake_nvml_errors import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_FUNCTION_NOT_FOUND,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_INVALID_ARGUMENT,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_FOUND,
    NVML_ERROR_NOT_SUPPORTED,
    NVML_ERROR_RESET_REQUIRED,
    NVML_ERROR_TIMEOUT,
    NVML_ERROR_UNINITIALIZED,
    NVML_ERROR_UNKNOWN,
    NVML_SUCCESS,
    NVMLError,
    NVMLError_DriverNotLoaded,
    NVMLError_FunctionNotFound,
    NVMLError_GpuIsLost,
    NVMLError_InvalidArgument,
    NVMLError_LibraryNotFound,
    NVMLError_NoPermission,
    NVMLError_NotFound,
    NVMLError_NotSupported,
    NVMLError_ResetRequired,
    NVMLError_Uninitialized,
    NVMLError_Unknown,
)
from daemon.gpu.power_curve import PowerCurve

__all__ = ["FakeGpu", "FakeNvml"]

# Sensor, clock and MIG constants as in nvml.h / pynvml (the error codes: fake_nvml_errors).
NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1

_U64 = 2**64


@dataclass
class _Memory:  # c_nvmlMemory_t
    total: int
    free: int
    used: int


@dataclass
class _Utilization:  # c_nvmlUtilization_t
    gpu: int
    memory: int


@dataclass
class FakeGpu:
    """One fake device. State is in W, J, bytes; the fake answers in NVML's units.

    ``power`` is the true power curve (its integral is what the counter reports). ``lost_at_s``
    loses the device from that monotonic time on; ``denied`` lists function names that raise
    ``NVMLError_NoPermission``.
    """

    power: PowerCurve
    name: str = "NVIDIA A100-SXM4-80GB"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    memory_total_bytes: int = 80 * 1024**3
    memory_used_bytes: int = 0
    power_limit_w: float = 400.0
    utilisation_pct: int = 0
    memory_utilisation_pct: int = 0
    temperature_c: int = 35
    fan_pct: int | None = None  # None: passively cooled, the fan query is not supported
    sm_clock_mhz: int = 1410
    memory_clock_mhz: int = 1593
    mig_mode: int | None = NVML_DEVICE_MIG_DISABLE  # None: MIG not supported
    energy_counter: bool = True
    energy_counter_start_mj: int = 0
    lost_at_s: float | None = None
    denied: set[str] = field(default_factory=set)
    last_query_s: float = -math.inf  # when any query last reached this device

    def counter_mj(self, t_s: float) -> int:
        """The raw 64-bit energy counter at ``t_s`` (mJ, wraps at 2**64)."""
        raw = self.energy_counter_start_mj + math.floor(self.power.energy_j(t_s) * 1000)
        return raw % _U64


class _Handle:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class FakeNvml:
    """Stands in for the ``pynvml`` module: pass it where the module is expected.

    Args:
        gpus: the devices, in index order.
        clock: monotonic seconds (a fake clock in tests, ``time.monotonic`` when simulating).
        driver_loaded: False makes ``nvmlInit`` raise ``NVMLError_DriverNotLoaded``.
        init_error: an NVML error code ``nvmlInit`` fails with (None: it succeeds).
        missing_functions: NVML functions this driver lacks (``NVMLError_FunctionNotFound``).
        privileged: whether the caller is root (MIG parents' memory info needs it).
    """

    NVMLError = NVMLError
    NVMLError_Uninitialized = NVMLError_Uninitialized
    NVMLError_InvalidArgument = NVMLError_InvalidArgument
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NoPermission = NVMLError_NoPermission
    NVMLError_NotFound = NVMLError_NotFound
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    NVMLError_GpuIsLost = NVMLError_GpuIsLost
    NVMLError_ResetRequired = NVMLError_ResetRequired
    NVMLError_Unknown = NVMLError_Unknown
    NVML_SUCCESS = NVML_SUCCESS
    NVML_ERROR_UNINITIALIZED = NVML_ERROR_UNINITIALIZED
    NVML_ERROR_INVALID_ARGUMENT = NVML_ERROR_INVALID_ARGUMENT
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_NO_PERMISSION = NVML_ERROR_NO_PERMISSION
    NVML_ERROR_NOT_FOUND = NVML_ERROR_NOT_FOUND
    NVML_ERROR_DRIVER_NOT_LOADED = NVML_ERROR_DRIVER_NOT_LOADED
    NVML_ERROR_LIBRARY_NOT_FOUND = NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_ERROR_FUNCTION_NOT_FOUND = NVML_ERROR_FUNCTION_NOT_FOUND
    NVML_ERROR_TIMEOUT = NVML_ERROR_TIMEOUT
    NVML_ERROR_GPU_IS_LOST = NVML_ERROR_GPU_IS_LOST
    NVML_ERROR_RESET_REQUIRED = NVML_ERROR_RESET_REQUIRED
    NVML_ERROR_UNKNOWN = NVML_ERROR_UNKNOWN
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    NVML_CLOCK_GRAPHICS = NVML_CLOCK_GRAPHICS
    NVML_CLOCK_SM = NVML_CLOCK_SM
    NVML_CLOCK_MEM = NVML_CLOCK_MEM
    NVML_DEVICE_MIG_DISABLE = NVML_DEVICE_MIG_DISABLE
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE

    def __init__(
        self,
        gpus: list[FakeGpu],
        clock: Callable[[], float],
        *,
        driver_loaded: bool = True,
        init_error: int | None = None,
        driver_version: str = "550.54.15",
        missing_functions: Collection[str] = (),
        privileged: bool = True,
    ) -> None:
        self.gpus = gpus
        self.clock = clock
        self.driver_loaded = driver_loaded
        self.init_error = init_error
        self.driver_version = driver_version
        self.missing_functions = set(missing_functions)
        self.privileged = privileged
        self.initialised = 0  # nvmlInit/nvmlShutdown are reference-counted, as in NVML
        self.calls: dict[str, int] = {}

    def _nvmlGetFunctionPointer(self, name: str) -> None:  # noqa: N802 - official-bindings marker
        """Present in the official bindings only; :func:`load_pynvml` checks for it."""

    # -- library ---------------------------------------------------------------------------
    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        self._resolve("nvmlInit")
        if not self.driver_loaded:
            raise NVMLError(NVML_ERROR_DRIVER_NOT_LOADED)
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self) -> None:  # noqa: N802 - pynvml name
        self._check_init()
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802 - pynvml name
        self._check_init()
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802 - pynvml name
        self._check_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:  # noqa: N802 - pynvml name
        self._check_init()
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        self._gpu(_Handle(index), "nvmlDeviceGetHandleByIndex")
        return _Handle(index)

    # -- identity --------------------------------------------------------------------------
    def nvmlDeviceGetName(self, handle: _Handle) -> str:  # noqa: N802 - pynvml name
        return self._gpu(handle, "nvmlDeviceGetName").name

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:  # noqa: N802 - pynvml name
        return self._gpu(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle) -> _Memory:  # noqa: N802 - pynvml name
        gpu = self._gpu(handle, "nvmlDeviceGetMemoryInfo")
        if gpu.mig_mode == NVML_DEVICE_MIG_ENABLE and not self.privileged:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)  # aggregate over MIG instances: root only
        used = gpu.memory_used_bytes
        return _Memory(total=gpu.memory_total_bytes, free=gpu.memory_total_bytes - used, used=used)

    def nvmlDeviceGetPowerManagementLimit(self, handle: _Handle) -> int:  # noqa: N802 - pynvml name
        return round(self._gpu(handle, "nvmlDeviceGetPowerManagementLimit").power_limit_w * 1000)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:  # noqa: N802 - pynvml name
        return round(self._gpu(handle, "nvmlDeviceGetEnforcedPowerLimit").power_limit_w * 1000)

    def nvmlDeviceGetMigMode(self, handle: _Handle) -> list[int]:  # noqa: N802 - pynvml name
        gpu = self._gpu(handle, "nvmlDeviceGetMigMode")
        if gpu.mig_mode is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return [gpu.mig_mode, gpu.mig_mode]

    # -- counters and sensors --------------------------------------------------------------
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:  # noqa: N802 - pynvml name
        gpu = self._gpu(handle, "nvmlDeviceGetTotalEnergyConsumption")
        if not gpu.energy_counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.counter_mj(self.clock())

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:  # noqa: N802 - pynvml name
        gpu = self._gpu(handle, "nvmlDeviceGetPowerUsage")
        return round(gpu.power.power_w(self.clock()) * 1000)

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> _Utilization:  # noqa: N802 - pynvml name
        gpu = self._gpu(handle, "nvmlDeviceGetUtilizationRates")
        if gpu.mig_mode == NVML_DEVICE_MIG_ENABLE:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return _Utilization(gpu=gpu.utilisation_pct, memory=gpu.memory_utilisation_pct)

    def nvmlDeviceGetTemperature(self, handle: _Handle, sensor: int) -> int:  # noqa: N802 - pynvml name
        gpu = self._gpu(handle, "nvmlDeviceGetTemperature")
        if sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temperature_c

    def nvmlDeviceGetFanSpeed(self, handle: _Handle) -> int:  # noqa: N802 - pynvml name
        gpu = self._gpu(handle, "nvmlDeviceGetFanSpeed")
        if gpu.fan_pct is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.fan_pct

    def nvmlDeviceGetClockInfo(self, handle: _Handle, clock_type: int) -> int:  # noqa: N802 - pynvml name
        gpu = self._gpu(handle, "nvmlDeviceGetClockInfo")
        if clock_type in (NVML_CLOCK_SM, NVML_CLOCK_GRAPHICS):
            return gpu.sm_clock_mhz
        if clock_type == NVML_CLOCK_MEM:
            return gpu.memory_clock_mhz
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)

    # -- helpers ---------------------------------------------------------------------------
    def _check_init(self) -> None:
        if self.initialised <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _resolve(self, function: str) -> None:
        """As ``_nvmlGetFunctionPointer``: a symbol the driver's library lacks raises first."""
        if function in self.missing_functions:
            raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)

    def _gpu(self, handle: _Handle, function: str) -> FakeGpu:
        self._resolve(function)
        self._check_init()
        self.calls[function] = self.calls.get(function, 0) + 1
        gpu = self.gpus[handle.index]
        gpu.last_query_s = self.clock()
        if gpu.lost_at_s is not None and self.clock() >= gpu.lost_at_s:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        if function in gpu.denied:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        return gpu


# The other error classes and codes too, as attributes of the module stand-in (pynvml has all).
for _name, _value in list(vars(fake_nvml_errors).items()):
    if _name.startswith(("NVMLError_", "NVML_ERROR_")) and not hasattr(FakeNvml, _name):
        setattr(FakeNvml, _name, _value)
