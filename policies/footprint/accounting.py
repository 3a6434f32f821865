"""Carbon accounting: the paper's equation, and nothing else computes grams.

    C = E * CI * PUE  +  (t / LT) * C_em * n_gpus

``E`` energy in joules, ``CI`` grid intensity in gCO2e/kWh, ``PUE`` the site's power usage
effectiveness, ``t`` the time the job holds its GPUs, ``LT`` the GPUs' lifetime, ``C_em`` one
GPU's embodied carbon in grams. Every function also accepts NumPy arrays (broadcasting), so the
planners score many (job, device, start) cells in one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt

from policies.fast_init import fast_init

__all__ = [
    "DEFAULT_LIFETIME_YEARS",
    "J_PER_KWH",
    "MAX_LIFETIME_YEARS",
    "MIN_LIFETIME_YEARS",
    "SECONDS_PER_YEAR",
    "CarbonFootprint",
    "embodied_g",
    "footprint",
    "operational_g",
]

J_PER_KWH: Final = 3_600_000
SECONDS_PER_YEAR: Final = 365.25 * 24 * 3600
DEFAULT_LIFETIME_YEARS: Final = 5.0
# A shorter GPU lifetime is a typo, not an amortisation: 5e-324 years made embodied grams inf
MIN_LIFETIME_YEARS: Final = 0.1
# and no GPU is amortised over more than a century: 1e308 years made embodied grams 0
MAX_LIFETIME_YEARS: Final = 100.0

FloatOrArray = TypeVar("FloatOrArray", float, npt.NDArray[np.float64])


def operational_g(
    energy_j: FloatOrArray, intensity_g_per_kwh: FloatOrArray, pue: float = 1.0
) -> FloatOrArray:
    """Operational emissions in grams: energy (J) x intensity (g/kWh) x PUE."""
    return energy_j / J_PER_KWH * intensity_g_per_kwh * pue


def embodied_g(
    duration_s: FloatOrArray,
    gpu_embodied_g: FloatOrArray,
    lifetime_years: float = DEFAULT_LIFETIME_YEARS,
    gpus: int = 1,
) -> FloatOrArray:
    """Embodied emissions in grams charged for holding ``gpus`` GPUs for ``duration_s``."""
    return duration_s / (lifetime_years * SECONDS_PER_YEAR) * gpu_embodied_g * gpus


@fast_init
@dataclass(frozen=True, slots=True)
class CarbonFootprint:
    """Operational and embodied grams CO2e of one job (or one request)."""

    operational_g: float
    embodied_g: float

    @property
    def total_g(self) -> float:
        """Operational + embodied grams."""
        return self.operational_g + self.embodied_g

    @property
    def embodied_share(self) -> float:
        """Embodied grams as a fraction of the total (0 when the total is 0)."""
        total = self.total_g
        return self.embodied_g / total if total else 0.0

    def scaled(self, factor: float) -> CarbonFootprint:
        """This footprint times ``factor`` (e.g. ``1 / requests`` for per-request figures)."""
        return CarbonFootprint(self.operational_g * factor, self.embodied_g * factor)


def footprint(
    energy_j: float,
    duration_s: float,
    intensity_g_per_kwh: float,
    gpu_embodied_g: float,
    *,
    pue: float = 1.0,
    lifetime_years: float = DEFAULT_LIFETIME_YEARS,
    gpus: int = 1,
) -> CarbonFootprint:
    """The operational + embodied footprint of a job (scalars)."""
    return CarbonFootprint(
        operational_g=float(operational_g(energy_j, intensity_g_per_kwh, pue)),
        embodied_g=float(embodied_g(duration_s, gpu_embodied_g, lifetime_years, gpus)),
    )
