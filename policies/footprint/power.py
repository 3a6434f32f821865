"""Board power of a GPU over a step, from how busy the step keeps it.

Power lies between idle and TDP: ``idle + (tdp - idle) * u``. Two curves say what ``u`` is:
carbond's calibrated :class:`PowerModel` (compute units and the memory system both draw) and the
simulation study's :class:`StudyPowerModel` (FLOPs only). The estimator (:mod:`.estimator`) and
the continuous-batching steady state (:mod:`.serving`) take either as a :class:`PowerCurve`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from policies.fast_init import fast_init
from policies.footprint.gpus import GpuSpec

__all__ = ["DEFAULT_POWER", "PowerCurve", "PowerModel", "StudyPowerModel"]


class PowerCurve(Protocol):
    """Board power of one GPU over a step, from how busy the step keeps it.

    ``t_compute_s`` and ``t_memory_s``: the step's time if bound by FLOPs (at the runtime's
    utilisation) or by bytes alone; ``t_step_s``: the step's time; ``t_peak_s``: the time its
    FLOPs would take at the GPU's peak rate (so ``t_peak_s / t_step_s`` is the achieved MFU).
    """

    def utilisation(
        self, t_compute_s: float, t_memory_s: float, t_step_s: float, t_peak_s: float = ...
    ) -> float:
        """The fraction of ``tdp - idle`` drawn, in [0, 1]."""
        ...

    def power_w(self, gpu: GpuSpec, utilisation: float) -> float:
        """Board power in watts at ``utilisation``."""
        ...


@fast_init
@dataclass(frozen=True, slots=True)
class PowerModel:
    """Board power as a function of how busy the GPU is.

    ``u = compute_weight * t_compute / t + memory_weight * t_memory / t``, clipped to
    ``[active_floor, 1]``; power is ``idle + (tdp - idle) * u``. ``t_compute`` and ``t_memory``
    are the times the step would take if bound by FLOPs or by bytes alone, ``t`` the step time.
    ``active_floor`` is the draw of a GPU that is held by a job but waiting on the host.
    """

    compute_weight: float = 1.0
    memory_weight: float = 0.7
    active_floor: float = 0.1

    def utilisation(
        self, t_compute_s: float, t_memory_s: float, t_step_s: float, t_peak_s: float = 0.0
    ) -> float:
        """The busy fraction ``u`` in [active_floor, 1] (``t_peak_s`` is not used)."""
        busy = (self.compute_weight * t_compute_s + self.memory_weight * t_memory_s) / t_step_s
        return min(1.0, max(self.active_floor, busy))

    def power_w(self, gpu: GpuSpec, utilisation: float) -> float:
        """Board power in watts at ``utilisation``."""
        return gpu.idle_w + (gpu.tdp_w - gpu.idle_w) * utilisation


DEFAULT_POWER: Final = PowerModel()


@dataclass(frozen=True, slots=True)
class StudyPowerModel:
    """The power curve of the simulation study carbond's site model follows (Özcan, Wiesner,
    Weiß and Kao, 2025, fitted on Vidur's GPU profiles)::

        P = P_idle + (P_max - P_idle) * min(1, (MFU / 0.45) ** 0.7)

    ``MFU`` is the step's achieved model-FLOPs utilisation (``t_peak_s / t_step_s``); ``P_max`` is
    the GPU's TDP. Memory traffic draws nothing of its own here (the study's model sees FLOPs
    only), which is what separates it from carbond's calibrated :class:`PowerModel`.
    """

    saturation_mfu: float = 0.45
    exponent: float = 0.7

    def utilisation(
        self, t_compute_s: float, t_memory_s: float, t_step_s: float, t_peak_s: float = 0.0
    ) -> float:
        """``min(1, (MFU / saturation_mfu) ** exponent)``."""
        mfu = max(t_peak_s, 0.0) / t_step_s if t_step_s > 0 else 0.0
        return float(min(1.0, (mfu / self.saturation_mfu) ** self.exponent))

    def power_w(self, gpu: GpuSpec, utilisation: float) -> float:
        """Board power in watts at ``utilisation``."""
        return gpu.idle_w + (gpu.tdp_w - gpu.idle_w) * utilisation
