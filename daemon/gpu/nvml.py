"""The NVML GPU backend: the only module that imports ``pynvml`` (from ``nvidia-ml-py``).

NVML answers in mW and mJ; they become W and J here and nowhere else. NVML errors are
translated into :mod:`daemon.gpu.errors` by their code, with ``raise ... from e``:

=================================================  ===========================
NVML code                                          carbond error
=================================================  ===========================
NOT_SUPPORTED                                      GpuNotSupportedError
FUNCTION_NOT_FOUND (an older driver lacks it)      GpuNotSupportedError for a device query,
                                                   NvmlUnavailableError for a library call
GPU_IS_LOST, RESET_REQUIRED                        GpuLostError
NO_PERMISSION                                      GpuPermissionError
DRIVER_NOT_LOADED, LIBRARY_NOT_FOUND,              NvmlUnavailableError
UNINITIALIZED, LIB_RM_VERSION_MISMATCH
anything else                                      GpuError
=================================================  ===========================

Starting is all or nothing: any failure of ``nvmlInit`` or of the device count (NVML documents
``NO_PERMISSION`` and ``UNKNOWN`` for ``nvmlInit``) is an ``NvmlUnavailableError``, which
``gpu.backend = "auto"`` falls back on.

A device whose energy counter is not supported has ``energy_counter=False`` and is metered by
the integral of its sampled power; so is one whose counter fails otherwise at discovery
(``NO_PERMISSION``, ``UNKNOWN``, ...; logged once, ``gpu_energy_counter_unreadable``). Only a lost
device, or NVML gone, stops its discovery there.

The cumulative energy counter is an unsigned 64-bit mJ count since the driver loaded. Readings
report it relative to the first read, unwrapped: a drop from the top quarter of the 64-bit range
is a wrap (add 2**64); any other drop is a counter reset (driver reload), after which counting
continues from the last value seen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from daemon.gpu.backend import GpuDevice, GpuReading
from daemon.gpu.errors import (
    GpuError,
    GpuLostError,
    GpuNotSupportedError,
    GpuPermissionError,
    NvmlUnavailableError,
)

__all__ = ["NvmlBackend", "load_pynvml"]

log = structlog.get_logger(__name__)

_U64 = 2**64
_WRAP_ZONE_MJ = 3 * 2**62  # a drop from above this is a 64-bit wrap, not a reset
_MILLI = 1000.0

# NVML error codes (nvml.h); the same values as pynvml's NVML_ERROR_* constants.
_NOT_SUPPORTED = 3
_NO_PERMISSION = 4
_FUNCTION_NOT_FOUND = 13  # the driver's libnvidia-ml lacks the symbol (an older driver)
_UNAVAILABLE = {1, 9, 12, 18}  # UNINITIALIZED, DRIVER_NOT_LOADED, LIBRARY_NOT_FOUND, RM mismatch
_LOST = {15, 16}  # GPU_IS_LOST, RESET_REQUIRED
_TEMPERATURE_GPU = 0
_CLOCK_SM = 1
_CLOCK_MEM = 2
_MIG_ENABLE = 1

_INSTALL_HINT = "install the official bindings: pip install nvidia-ml-py"


def load_pynvml() -> Any:
    """Import the official NVML bindings.

    Raises:
        NvmlUnavailableError: ``pynvml`` is missing, or it is the unofficial ``pynvml`` build
            (which lacks ``_nvmlGetFunctionPointer`` and conflicts with ``nvidia-ml-py``).
    """
    try:
        import pynvml
    except ImportError as e:
        raise NvmlUnavailableError(f"NVML bindings not found ({e}); {_INSTALL_HINT}") from e
    if not hasattr(pynvml, "_nvmlGetFunctionPointer"):
        raise NvmlUnavailableError(
            f"unofficial pynvml package found at {getattr(pynvml, '__file__', '?')}; "
            f"remove it (pip uninstall pynvml) and {_INSTALL_HINT}"
        )
    return pynvml


@dataclass(slots=True)
class _Counter:
    """Unwrapping state of one device's energy counter (mJ, private to this module)."""

    base_mj: int
    last_raw_mj: int
    offset_mj: int = 0

    def energy_j(self, raw_mj: int) -> float:
        if raw_mj < self.last_raw_mj:
            self.offset_mj += _U64 if self.last_raw_mj >= _WRAP_ZONE_MJ else self.last_raw_mj
        self.last_raw_mj = raw_mj
        return (raw_mj + self.offset_mj - self.base_mj) / _MILLI


class NvmlBackend:
    """GPU devices and readings from NVML.

    Args:
        module: the ``pynvml`` module, or a stand-in with its names (the fake NVML); default:
            :func:`load_pynvml` at :meth:`start`.
        clock: monotonic seconds that stamp readings.
        name: backend name shown to users.
    """

    def __init__(
        self,
        module: Any | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        name: str = "nvml",
    ) -> None:
        self._module = module
        self._clock = clock
        self._name = name
        self._lock = threading.Lock()
        self._handles: dict[int, Any] = {}
        self._devices: tuple[GpuDevice, ...] = ()
        self._counters: dict[int, _Counter] = {}
        self._started = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def driver_version(self) -> str | None:
        """The driver version NVML reports, None before :meth:`start`."""
        if not self._started:
            return None
        return str(self._call("nvmlSystemGetDriverVersion", -1))

    def start(self) -> None:
        """``nvmlInit`` and discover the devices.

        Raises:
            NvmlUnavailableError: no bindings, unofficial bindings, no driver, or ``nvmlInit``
                or the device count failed otherwise (NVML documents ``NO_PERMISSION`` to
                talk to the driver and ``UNKNOWN`` for ``nvmlInit``): NVML cannot be used.
        """
        if self._started:
            return
        if self._module is None:
            self._module = load_pynvml()
        try:
            self._call("nvmlInit", -1)
        except NvmlUnavailableError:
            raise
        except GpuError as e:
            raise _unusable(e) from e
        self._started = True
        try:
            self._devices = self._discover()
        except GpuError as e:  # not started after all: NVML shut down again, a later start retries
            self.close()
            if isinstance(e, NvmlUnavailableError):
                raise
            raise _unusable(e) from e
        log.info("nvml_started", backend=self._name, devices=len(self._devices))

    def close(self) -> None:
        if not self._started:
            return
        self._started = False
        try:
            self._call("nvmlShutdown", -1)
        except GpuError as e:  # shutting down a broken driver must not stop the daemon's exit
            log.warning("nvml_shutdown_failed", error=str(e))

    def devices(self) -> tuple[GpuDevice, ...]:
        return self._devices

    def read(self, index: int) -> GpuReading:
        handle = self._handle(index)
        now_s = self._clock()
        energy_j = self._energy_j(index, handle)
        power_mw = self._optional("nvmlDeviceGetPowerUsage", index, handle)
        util = self._optional("nvmlDeviceGetUtilizationRates", index, handle)
        memory = self._optional("nvmlDeviceGetMemoryInfo", index, handle)
        temperature = self._optional("nvmlDeviceGetTemperature", index, handle, _TEMPERATURE_GPU)
        fan = self._optional("nvmlDeviceGetFanSpeed", index, handle)
        sm_clock = self._optional("nvmlDeviceGetClockInfo", index, handle, _CLOCK_SM)
        mem_clock = self._optional("nvmlDeviceGetClockInfo", index, handle, _CLOCK_MEM)
        return GpuReading(
            index=index,
            monotonic_s=now_s,
            energy_j=energy_j,
            power_w=None if power_mw is None else power_mw / _MILLI,
            utilisation_pct=None if util is None else float(util.gpu),
            memory_used_bytes=None if memory is None else int(memory.used),
            temperature_c=None if temperature is None else float(temperature),
            fan_pct=None if fan is None else float(fan),
            sm_clock_mhz=None if sm_clock is None else float(sm_clock),
            memory_clock_mhz=None if mem_clock is None else float(mem_clock),
        )

    # -- internals -------------------------------------------------------------------------
    def _discover(self) -> tuple[GpuDevice, ...]:
        found: list[GpuDevice] = []
        for index in range(int(self._call("nvmlDeviceGetCount", -1))):
            try:
                found.append(self._describe(index))
            except NvmlUnavailableError:
                raise
            except GpuError as e:
                # Lost, unpowered, or refused: nvmlDeviceGetCount_v2 counts devices whose
                # nvmlDeviceGetHandleByIndex_v2 is NO_PERMISSION. The others are still measured.
                log.warning("gpu_skipped_at_discovery", gpu=index, error=str(e))
        return tuple(found)

    def _describe(self, index: int) -> GpuDevice:
        handle = self._call("nvmlDeviceGetHandleByIndex", index, index)
        self._handles[index] = handle
        limit_mw = self._optional("nvmlDeviceGetEnforcedPowerLimit", index, handle)
        mig = self._optional("nvmlDeviceGetMigMode", index, handle)
        # NO_PERMISSION on a MIG-enabled GPU unless root: None then, not a failed discovery
        memory = self._optional("nvmlDeviceGetMemoryInfo", index, handle)
        try:
            raw = int(self._call("nvmlDeviceGetTotalEnergyConsumption", index, handle))
            self._counters[index] = _Counter(base_mj=raw, last_raw_mj=raw)
        except GpuNotSupportedError:
            pass  # pre-Volta: energy is the integral of sampled power
        except (GpuLostError, NvmlUnavailableError):
            raise
        except GpuError as e:  # refused or failing: the GPU can still be sampled, as above
            log.warning("gpu_energy_counter_unreadable", gpu=index, error=str(e),
                        fallback="power_integral")  # fmt: skip
        return GpuDevice(
            index=index,
            uuid=_text(self._call("nvmlDeviceGetUUID", index, handle)),
            name=_text(self._call("nvmlDeviceGetName", index, handle)),
            memory_total_bytes=None if memory is None else int(memory.total),
            power_limit_w=None if limit_mw is None else limit_mw / _MILLI,
            mig_enabled=None if mig is None else mig[0] == _MIG_ENABLE,
            energy_counter=index in self._counters,
        )

    def _handle(self, index: int) -> Any:
        try:
            return self._handles[index]
        except KeyError:
            raise GpuError(
                f"GPU {index}: no such device (known: {sorted(self._handles)})"
            ) from None

    def _energy_j(self, index: int, handle: Any) -> float | None:
        counter = self._counters.get(index)
        if counter is None:
            return None
        # Read and unwrap under one lock: a raw value read before another thread's newer one
        # and applied after it would look like a counter reset (the sampler thread and the
        # service both read).
        with self._lock:
            raw = int(self._call("nvmlDeviceGetTotalEnergyConsumption", index, handle))
            return counter.energy_j(raw)

    def _optional(self, function: str, index: int, *args: Any) -> Any:
        """Call ``function``; None where the device does not support it or denies it."""
        try:
            return self._call(function, index, *args)
        except (GpuNotSupportedError, GpuPermissionError):
            return None

    def _call(self, function: str, index: int, *args: Any) -> Any:
        module = self._module
        assert module is not None, "NvmlBackend used before start()"
        try:
            return getattr(module, function)(*args)
        except module.NVMLError as e:
            raise _translate(e, function, index) from e


def _unusable(error: GpuError) -> NvmlUnavailableError:
    """``error`` from starting NVML, as the :class:`NvmlUnavailableError` that ``auto`` falls
    back on."""
    return NvmlUnavailableError(f"{error}; NVML cannot be used")


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _translate(error: Any, function: str, index: int) -> GpuError:
    code = int(getattr(error, "value", -1))
    where = "NVML" if index < 0 else f"GPU {index}"
    message = f"{where}: {function} failed: {error} (NVML error {code})"
    if code == _FUNCTION_NOT_FOUND:  # e.g. nvmlDeviceGetMigMode on a driver before R450
        if index < 0:
            return NvmlUnavailableError(f"{message}; the NVIDIA driver is too old")
        code = _NOT_SUPPORTED  # a device query this driver does not have
    if code == _NOT_SUPPORTED:
        return GpuNotSupportedError(message)
    if code in _LOST:
        return GpuLostError(index, message)
    if code == _NO_PERMISSION:
        return GpuPermissionError(message)
    if code in _UNAVAILABLE:
        return NvmlUnavailableError(f"{message}; is the NVIDIA driver loaded?")
    return GpuError(message)
