"""A faithful fake of the ``pynvml`` module (``nvidia-ml-py``) for tests and simulated GPUs.

It has the function names, return units (mW, mJ, bytes, %, °C, MHz), error classes and error
codes of the real bindings, so :class:`daemon.gpu.nvml.NvmlBackend` runs unchanged on it:

- ``nvmlDeviceGetTotalEnergyConsumption`` is an unsigned 64-bit mJ counter: the exact integral of
  the device's :class:`PowerCurve`, plus a settable start value, modulo 2**64 (so it can wrap);
- devices can lack the energy counter, a fan or MIG (``NVMLError_NotSupported``);
- on a MIG-enabled device, utilisation is ``NVMLError_NotSupported`` and the parent's memory
  info ``NVMLError_NoPermission`` unless the caller is privileged (as NVML documents);
- a device can be lost at a given time (every call then raises ``NVMLError_GpuIsLost``);
- ``nvmlInit`` can fail as with no driver (``NVMLError_DriverNotLoaded``), queries can be refused
  (``NVMLError_NoPermission``), and calls before ``nvmlInit`` raise ``NVMLError_Uninitialized``;
- an older driver can lack functions (``NVMLError_FunctionNotFound``, which the bindings raise when
  ``libnvidia-ml`` has no such symbol, e.g. ``nvmlDeviceGetMigMode`` before R450).

Device state is given in W and J (:class:`FakeGpu`); the fake answers in NVML's mW and mJ, as the
hardware does. Time comes from an injected monotonic clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, ClassVar

from daemon.gpu.power_curve import PowerCurve

__all__ = ["FakeGpu", "FakeNvml", "NVMLError"]

# Codes as in nvml.h / pynvml.
NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_IN_USE = 19
NVML_ERROR_MEMORY = 20
NVML_ERROR_NO_DATA = 21
NVML_ERROR_VGPU_ECC_NOT_SUPPORTED = 22
NVML_ERROR_INSUFFICIENT_RESOURCES = 23
NVML_ERROR_FREQ_NOT_SUPPORTED = 24
NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25
NVML_ERROR_DEPRECATED = 26
NVML_ERROR_NOT_READY = 27
NVML_ERROR_GPU_NOT_FOUND = 28
NVML_ERROR_INVALID_STATE = 29
NVML_ERROR_RESET_TYPE_NOT_SUPPORTED = 30
NVML_ERROR_UNKNOWN = 999
NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1

_U64 = 2**64


class NVMLError(Exception):
    """Like ``pynvml.NVMLError``: ``NVMLError(code)`` builds the subclass for ``code``."""

    _valClassMapping: ClassVar[dict[int, type[NVMLError]]] = {}  # noqa: N815 - pynvml's name
    value: int

    def __new__(cls, value: int) -> NVMLError:
        klass = NVMLError._valClassMapping.get(value, cls) if cls is NVMLError else cls
        obj = Exception.__new__(klass)
        obj.value = value
        return obj

    def __eq__(self, other: object) -> bool:  # as pynvml: errors compare by code
        return self.value == getattr(other, "value", None)

    __hash__ = None  # type: ignore[assignment]  # as pynvml's (``__eq__`` without ``__hash__``)

    def __str__(self) -> str:
        return _ERROR_STRINGS.get(self.value, f"NVML Error with code {self.value}")


_ERROR_STRINGS = {  # pynvml's NVMLError._errcode_to_string
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_INSUFFICIENT_SIZE: "Insufficient Size",
    NVML_ERROR_INSUFFICIENT_POWER: "Insufficient External Power",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_TIMEOUT: "Timeout",
    NVML_ERROR_IRQ_ISSUE: "Interrupt Request Issue",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_CORRUPTED_INFOROM: "Corrupted infoROM",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_RESET_REQUIRED: "GPU requires restart",
    NVML_ERROR_OPERATING_SYSTEM: "The operating system has blocked the request.",
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: "RM has detected an NVML/RM version mismatch.",
    NVML_ERROR_MEMORY: "Insufficient Memory",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


def _error_class(name: str, code: int) -> type[NVMLError]:
    def new(cls: type[NVMLError], *args: Any) -> NVMLError:
        return NVMLError.__new__(cls, code)

    klass = type(name, (NVMLError,), {"__new__": new, "__module__": __name__})
    NVMLError._valClassMapping[code] = klass
    return klass


# The subclasses pynvml generates from the NVML_ERROR_* names (same names, same codes).
NVMLError_Uninitialized = _error_class("NVMLError_Uninitialized", NVML_ERROR_UNINITIALIZED)
NVMLError_InvalidArgument = _error_class("NVMLError_InvalidArgument", NVML_ERROR_INVALID_ARGUMENT)
NVMLError_NotSupported = _error_class("NVMLError_NotSupported", NVML_ERROR_NOT_SUPPORTED)
NVMLError_NoPermission = _error_class("NVMLError_NoPermission", NVML_ERROR_NO_PERMISSION)
NVMLError_AlreadyInitialized = _error_class(
    "NVMLError_AlreadyInitialized", NVML_ERROR_ALREADY_INITIALIZED
)
NVMLError_NotFound = _error_class("NVMLError_NotFound", NVML_ERROR_NOT_FOUND)
NVMLError_InsufficientSize = _error_class(
    "NVMLError_InsufficientSize", NVML_ERROR_INSUFFICIENT_SIZE
)
NVMLError_InsufficientPower = _error_class(
    "NVMLError_InsufficientPower", NVML_ERROR_INSUFFICIENT_POWER
)
NVMLError_DriverNotLoaded = _error_class("NVMLError_DriverNotLoaded", NVML_ERROR_DRIVER_NOT_LOADED)
NVMLError_Timeout = _error_class("NVMLError_Timeout", NVML_ERROR_TIMEOUT)
NVMLError_IrqIssue = _error_class("NVMLError_IrqIssue", NVML_ERROR_IRQ_ISSUE)
NVMLError_LibraryNotFound = _error_class("NVMLError_LibraryNotFound", NVML_ERROR_LIBRARY_NOT_FOUND)
NVMLError_FunctionNotFound = _error_class(
    "NVMLError_FunctionNotFound", NVML_ERROR_FUNCTION_NOT_FOUND
)
NVMLError_CorruptedInforom = _error_class(
    "NVMLError_CorruptedInforom", NVML_ERROR_CORRUPTED_INFOROM
)
NVMLError_GpuIsLost = _error_class("NVMLError_GpuIsLost", NVML_ERROR_GPU_IS_LOST)
NVMLError_ResetRequired = _error_class("NVMLError_ResetRequired", NVML_ERROR_RESET_REQUIRED)
NVMLError_OperatingSystem = _error_class("NVMLError_OperatingSystem", NVML_ERROR_OPERATING_SYSTEM)
NVMLError_LibRmVersionMismatch = _error_class(
    "NVMLError_LibRmVersionMismatch", NVML_ERROR_LIB_RM_VERSION_MISMATCH
)
NVMLError_InUse = _error_class("NVMLError_InUse", NVML_ERROR_IN_USE)
NVMLError_Memory = _error_class("NVMLError_Memory", NVML_ERROR_MEMORY)
NVMLError_NoData = _error_class("NVMLError_NoData", NVML_ERROR_NO_DATA)
NVMLError_VgpuEccNotSupported = _error_class(
    "NVMLError_VgpuEccNotSupported", NVML_ERROR_VGPU_ECC_NOT_SUPPORTED
)
NVMLError_InsufficientResources = _error_class(
    "NVMLError_InsufficientResources", NVML_ERROR_INSUFFICIENT_RESOURCES
)
NVMLError_FreqNotSupported = _error_class(
    "NVMLError_FreqNotSupported", NVML_ERROR_FREQ_NOT_SUPPORTED
)
NVMLError_ArgumentVersionMismatch = _error_class(
    "NVMLError_ArgumentVersionMismatch", NVML_ERROR_ARGUMENT_VERSION_MISMATCH
)
NVMLError_Deprecated = _error_class("NVMLError_Deprecated", NVML_ERROR_DEPRECATED)
NVMLError_NotReady = _error_class("NVMLError_NotReady", NVML_ERROR_NOT_READY)
NVMLError_GpuNotFound = _error_class("NVMLError_GpuNotFound", NVML_ERROR_GPU_NOT_FOUND)
NVMLError_InvalidState = _error_class("NVMLError_InvalidState", NVML_ERROR_INVALID_STATE)
NVMLError_ResetTypeNotSupported = _error_class(
    "NVMLError_ResetTypeNotSupported", NVML_ERROR_RESET_TYPE_NOT_SUPPORTED
)
NVMLError_Unknown = _error_class("NVMLError_Unknown", NVML_ERROR_UNKNOWN)


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
        driver_version: str = "550.54.15",
        missing_functions: Collection[str] = (),
        privileged: bool = True,
    ) -> None:
        self.gpus = gpus
        self.clock = clock
        self.driver_loaded = driver_loaded
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
for _name, _value in list(globals().items()):
    if _name.startswith(("NVMLError_", "NVML_ERROR_")) and not hasattr(FakeNvml, _name):
        setattr(FakeNvml, _name, _value)
