"""A piecewise-linear power curve and its exact energy integral, for fake and simulated GPUs.

The curve is a list of breakpoints ``(t_s, power_w)`` with non-decreasing times; power is linear
between breakpoints, constant after the last one and zero before the first. Two breakpoints at the
same time make a step. :meth:`PowerCurve.energy_j` is the exact integral, which is what a real
GPU's energy counter would report; tests compare sampled integrals with it.
"""

from __future__ import annotations

import bisect
import threading

__all__ = ["PowerCurve"]


class PowerCurve:
    """Power in W as a function of monotonic time in s, with its exact integral in J."""

    def __init__(self, start_s: float, power_w: float) -> None:
        self._times: list[float] = [start_s]
        self._powers: list[float] = [power_w]
        self._cumulative_j: list[float] = [0.0]  # energy from start_s to each breakpoint
        self._lock = threading.Lock()

    @property
    def start_s(self) -> float:
        """Time of the first breakpoint."""
        return self._times[0]

    def add_point(self, t_s: float, power_w: float) -> None:
        """Append a breakpoint; ``t_s`` must not precede the last one.

        Raises:
            ValueError: ``t_s`` is earlier than the last breakpoint or ``power_w`` is negative.
        """
        if power_w < 0:
            raise ValueError(f"power_w must be >= 0, got {power_w}")
        with self._lock:
            last_t, last_p = self._times[-1], self._powers[-1]
            if t_s < last_t:
                raise ValueError(f"breakpoint at {t_s} s precedes the last one at {last_t} s")
            segment_j = (last_p + power_w) / 2 * (t_s - last_t)
            self._times.append(t_s)
            self._powers.append(power_w)
            self._cumulative_j.append(self._cumulative_j[-1] + segment_j)

    def step(self, t_s: float, power_w: float) -> None:
        """Jump to ``power_w`` at ``t_s`` (constant before it, from the last breakpoint)."""
        self.add_point(t_s, self.power_w(t_s))
        self.add_point(t_s, power_w)

    def step_back(self, t_s: float, power_w: float) -> None:
        """Jump to ``power_w`` at ``t_s``, dropping every breakpoint after ``t_s`` (rewrites
        the curve's future from ``t_s``; the simulator uses it for a job that ended between
        two reads).

        Raises:
            ValueError: ``t_s`` precedes the start of the curve or ``power_w`` is negative.
        """
        with self._lock:
            if t_s < self._times[0]:
                raise ValueError(f"{t_s} s precedes the curve's start at {self._times[0]} s")
            keep = bisect.bisect_right(self._times, t_s)
            at_t = self._power_locked(t_s)
            del self._times[keep:], self._powers[keep:], self._cumulative_j[keep:]
        self.add_point(t_s, at_t)
        self.add_point(t_s, power_w)

    def power_w(self, t_s: float) -> float:
        """Power at ``t_s`` (the later value at a step)."""
        with self._lock:
            return self._power_locked(t_s)

    def energy_j(self, t_s: float) -> float:
        """Exact energy from the start of the curve to ``t_s``."""
        with self._lock:
            if t_s <= self._times[0]:
                return 0.0
            k = bisect.bisect_right(self._times, t_s) - 1
            p_k = self._powers[k]
            return self._cumulative_j[k] + (p_k + self._power_locked(t_s)) / 2 * (
                t_s - self._times[k]
            )

    def _power_locked(self, t_s: float) -> float:
        if t_s < self._times[0]:
            return 0.0
        k = bisect.bisect_right(self._times, t_s) - 1
        if k == len(self._times) - 1:
            return self._powers[k]
        t0, t1 = self._times[k], self._times[k + 1]
        p0, p1 = self._powers[k], self._powers[k + 1]
        return p0 + (p1 - p0) * (t_s - t0) / (t1 - t0)
