"""The GPU sampler: one thread reading every device at a fixed period, in bounded memory.

Per device it keeps the latest reading, a ring buffer of the last ``history_samples`` readings
(time, power, utilisation, temperature, fan; NumPy, fixed size) and the running trapezoid integral
of sampled power (J) — the energy source for devices without an energy counter, constant memory
however long a job runs. Listeners (the energy meter) get every reading, outside the lock.
A lost device is reported once through :meth:`Sampler.drain_lost` and no longer read.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import structlog

from daemon.gpu.backend import GpuBackend, GpuReading
from daemon.gpu.errors import GpuError, GpuLostError

__all__ = ["HISTORY_COLUMNS", "LostGpu", "Sampler"]

log = structlog.get_logger(__name__)

HISTORY_COLUMNS = ("monotonic_s", "power_w", "utilisation_pct", "temperature_c", "fan_pct")


@dataclass(frozen=True, slots=True)
class LostGpu:
    """A device that stopped answering: its index, the error text and when (monotonic s)."""

    index: int
    reason: str
    monotonic_s: float


class _Device:
    """Per-device sampler state (guarded by the sampler's lock)."""

    __slots__ = ("count", "history", "integral_j", "last_power", "last_t", "latest")

    def __init__(self, capacity: int) -> None:
        self.history = np.full((capacity, len(HISTORY_COLUMNS)), np.nan)
        self.count = 0
        self.latest: GpuReading | None = None
        self.last_t: float | None = None
        self.last_power = 0.0
        self.integral_j = 0.0

    def record(self, r: GpuReading) -> None:
        row = self.history[self.count % len(self.history)]
        row[:] = (
            r.monotonic_s,
            _nan(r.power_w),
            _nan(r.utilisation_pct),
            _nan(r.temperature_c),
            _nan(r.fan_pct),
        )
        self.count += 1
        self.latest = r
        if r.power_w is None:
            return
        if self.last_t is not None and r.monotonic_s > self.last_t:
            self.integral_j += (self.last_power + r.power_w) / 2 * (r.monotonic_s - self.last_t)
        self.last_t, self.last_power = r.monotonic_s, r.power_w


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


class Sampler:
    """Reads every device of ``backend`` every ``period_s`` on one thread.

    Args:
        backend: a started GPU backend.
        period_s: sampling period (default 0.1 s, as the paper).
        history_samples: ring-buffer length per device (memory is fixed by it).
        clock: monotonic seconds used to schedule rounds.
    """

    def __init__(
        self,
        backend: GpuBackend,
        *,
        period_s: float = 0.1,
        history_samples: int = 600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if period_s <= 0 or history_samples < 1:
            raise GpuError(
                f"sampler: need period_s > 0 and history_samples >= 1, got "
                f"{period_s} and {history_samples}"
            )
        self._backend = backend
        self._period_s = period_s
        self._clock = clock
        self._lock = threading.Lock()
        self._devices = {d.index: _Device(history_samples) for d in backend.devices()}
        self._lost: dict[int, LostGpu] = {}
        self._undrained: list[LostGpu] = []
        self._listeners: list[Callable[[GpuReading], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0

    @property
    def period_s(self) -> float:
        return self._period_s

    def add_listener(self, listener: Callable[[GpuReading], None]) -> None:
        """Call ``listener(reading)`` for every reading (on the sampler thread, outside locks)."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Start the sampling thread (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="carbond-gpu-sampler", daemon=True)
        self._thread.start()
        log.info("gpu_sampler_started", period_s=self._period_s, devices=len(self._devices))

    def close(self) -> None:
        """Stop the thread and wait for it; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sample_once(self) -> None:
        """Read every live device once (the thread's round; call it directly in replay/tests)."""
        readings: list[GpuReading] = []
        for index in list(self._devices):
            try:
                readings.append(self._read(index))
            except GpuLostError:
                continue  # recorded by _read
            except GpuError as e:
                log.warning("gpu_read_failed", gpu=index, error=str(e))
        self.rounds += 1
        for reading in readings:
            for listener in self._listeners:
                listener(reading)

    def read_now(self, index: int) -> GpuReading:
        """Read device ``index`` now, outside the schedule, and record the reading.

        Raises:
            GpuLostError: the device is lost (also reported by :meth:`drain_lost`).
            GpuError: the device is unknown or the read failed.
        """
        return self._read(index)

    def last_integrated_energy_j(self, index: int) -> float:
        """Sampled-power integral (J) of ``index`` from its first to its last good reading."""
        with self._lock:
            return self._state(index).integral_j

    def latest(self, index: int) -> GpuReading | None:
        """The last good reading of device ``index`` (None before the first)."""
        with self._lock:
            return self._state(index).latest

    def history(self, index: int) -> npt.NDArray[np.float64]:
        """The last readings of ``index``, oldest first, columns :data:`HISTORY_COLUMNS`."""
        with self._lock:
            state = self._state(index)
            capacity = len(state.history)
            if state.count <= capacity:
                return state.history[: state.count].copy()
            start = state.count % capacity
            return np.concatenate([state.history[start:], state.history[:start]])

    def lost(self) -> tuple[LostGpu, ...]:
        """Every device lost so far."""
        with self._lock:
            return tuple(self._lost.values())

    def drain_lost(self) -> tuple[LostGpu, ...]:
        """Devices lost since the last call (each reported once)."""
        with self._lock:
            drained, self._undrained = tuple(self._undrained), []
            return drained

    def _state(self, index: int) -> _Device:
        try:
            return self._devices[index]
        except KeyError:
            raise GpuError(f"GPU {index}: not sampled (known: {sorted(self._devices)})") from None

    def _read(self, index: int) -> GpuReading:
        with self._lock:
            if index in self._lost:
                raise GpuLostError(index, self._lost[index].reason)
            state = self._state(index)
            try:
                reading = self._backend.read(index)
            except GpuLostError as e:
                lost = LostGpu(index, str(e), self._clock())
                self._lost[index] = lost
                self._undrained.append(lost)
                log.error("gpu_lost", gpu=index, error=str(e))
                raise
            state.record(reading)
            return reading

    def _run(self) -> None:
        next_s = self._clock()
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception:  # the sampler must outlive any one bad round
                log.exception("gpu_sampler_round_failed")
            next_s += self._period_s
            now_s = self._clock()
            next_s = max(next_s, now_s)  # fell behind: skip missed rounds rather than burst
            self._stop.wait(next_s - now_s)
