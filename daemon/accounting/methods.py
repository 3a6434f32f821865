"""How a finished job's energy was obtained: the ``energy_method`` flag of every outcome.

Best first: a GPU's own cumulative energy counter, the integral of its sampled power, the
batch system's energy accounting, and last the estimator's power times the real duration.
Reports say how much of the energy each kind covers; none of them drops a job.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ESTIMATED",
    "MEASURED_METHODS",
    "NVML_COUNTER",
    "NVML_POWER_INTEGRAL",
    "SLURM_SACCT",
    "is_measured",
    "meter_method",
]

NVML_COUNTER: Final = "nvml-counter"
NVML_POWER_INTEGRAL: Final = "nvml-power-integral"
SLURM_SACCT: Final = "slurm-sacct"
ESTIMATED: Final = "estimated"

MEASURED_METHODS: Final = frozenset({NVML_COUNTER, NVML_POWER_INTEGRAL, SLURM_SACCT})


def meter_method(backend: str, method: str) -> str:
    """The flag of energy metered by GPU ``backend`` (``nvml``, ``simulated``) with the meter's
    ``method`` (``counter``, ``power_integral``, ``mixed``): ``nvml-counter``, ...,
    ``simulated-counter`` (the demo's and replay's simulated GPUs say so)."""
    return f"{backend}-{method.replace('_', '-')}"


def is_measured(method: str | None) -> bool:
    """Whether ``method`` names energy that something measured (not ``estimated``, not
    unknown). Simulated meters count as measured: they stand for NVML in replay and the demo."""
    return method is not None and method != ESTIMATED
