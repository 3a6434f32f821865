"""The error codes of ``nvml.h`` and the error classes of ``pynvml`` (``nvidia-ml-py``), faked
for :mod:`daemon.gpu.fake_nvml`: the same names, codes and messages as the real bindings, and
``NVMLError(code)`` builds the subclass for ``code`` as ``pynvml``'s does (``_nvmlCheckReturn``
raises it so), so :class:`daemon.gpu.nvml.NvmlBackend` translates the fake's errors as it does
the real ones."""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "NVML_ERROR_ALREADY_INITIALIZED", "NVML_ERROR_ARGUMENT_VERSION_MISMATCH",
    "NVML_ERROR_CORRUPTED_INFOROM", "NVML_ERROR_DEPRECATED", "NVML_ERROR_DRIVER_NOT_LOADED",
    "NVML_ERROR_FREQ_NOT_SUPPORTED", "NVML_ERROR_FUNCTION_NOT_FOUND", "NVML_ERROR_GPU_IS_LOST",
    "NVML_ERROR_GPU_NOT_FOUND", "NVML_ERROR_INSUFFICIENT_POWER",
    "NVML_ERROR_INSUFFICIENT_RESOURCES", "NVML_ERROR_INSUFFICIENT_SIZE",
    "NVML_ERROR_INVALID_ARGUMENT", "NVML_ERROR_INVALID_STATE", "NVML_ERROR_IN_USE",
    "NVML_ERROR_IRQ_ISSUE", "NVML_ERROR_LIBRARY_NOT_FOUND",
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH", "NVML_ERROR_MEMORY", "NVML_ERROR_NOT_FOUND",
    "NVML_ERROR_NOT_READY", "NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_NO_DATA",
    "NVML_ERROR_NO_PERMISSION", "NVML_ERROR_OPERATING_SYSTEM", "NVML_ERROR_RESET_REQUIRED",
    "NVML_ERROR_RESET_TYPE_NOT_SUPPORTED", "NVML_ERROR_TIMEOUT", "NVML_ERROR_UNINITIALIZED",
    "NVML_ERROR_UNKNOWN", "NVML_ERROR_VGPU_ECC_NOT_SUPPORTED", "NVML_SUCCESS", "NVMLError",
    "NVMLError_AlreadyInitialized", "NVMLError_ArgumentVersionMismatch",
    "NVMLError_CorruptedInforom", "NVMLError_Deprecated", "NVMLError_DriverNotLoaded",
    "NVMLError_FreqNotSupported", "NVMLError_FunctionNotFound", "NVMLError_GpuIsLost",
    "NVMLError_GpuNotFound", "NVMLError_InUse", "NVMLError_InsufficientPower",
    "NVMLError_InsufficientResources", "NVMLError_InsufficientSize",
    "NVMLError_InvalidArgument", "NVMLError_InvalidState", "NVMLError_IrqIssue",
    "NVMLError_LibRmVersionMismatch", "NVMLError_LibraryNotFound", "NVMLError_Memory",
    "NVMLError_NoData", "NVMLError_NoPermission", "NVMLError_NotFound", "NVMLError_NotReady",
    "NVMLError_NotSupported", "NVMLError_OperatingSystem", "NVMLError_ResetRequired",
    "NVMLError_ResetTypeNotSupported", "NVMLError_Timeout", "NVMLError_Uninitialized",
    "NVMLError_Unknown", "NVMLError_VgpuEccNotSupported",
]  # fmt: skip

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
