"""``lowest-energy`` and ``spatial``: start every job now, choosing only where.

- ``lowest-energy``: the free device with the least estimated energy (carbon-blind, but
  efficiency-aware: what an energy-minimising scheduler does).
- ``spatial``: the free device/region with the least estimated operational + embodied carbon at
  the current intensity (location shifting, no waiting).

Jobs are taken in FIFO order; a job whose every fitting GPU is busy waits for the next tick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from policies.base import register_policy
from policies.decisions import plan_immediately
from policies.footprint.accounting import DEFAULT_LIFETIME_YEARS
from policies.footprint.estimator import Estimate
from policies.footprint.recalibration import Recalibration
from policies.parameters import LIFETIME_CHECK, check_fields
from policies.scoring import SlotGrid, make_pools, score
from policies.types import Decision, Device, JobSpec, ZoneIntensity

__all__ = ["LowestEnergy", "Spatial"]


@dataclass(frozen=True, slots=True)
class _Immediate:
    lifetime_years: float = DEFAULT_LIFETIME_YEARS
    alternatives: int = 3
    recalibration: Recalibration | None = None  # online factors from measured outcomes
    plan_interval_s: float | None = None  # its caller's rounds (with_plan_interval)
    _cache: dict[tuple[object, ...], Estimate] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        check_fields(self, (LIFETIME_CHECK, ("alternatives", lambda v: v >= 0, "0 or more")))

    @property
    def name(self) -> str:
        raise NotImplementedError

    def _metric_is_energy(self) -> bool:
        raise NotImplementedError

    def plan(
        self,
        now: datetime,
        jobs: Sequence[JobSpec],
        devices: Sequence[Device],
        forecasts: Mapping[str, ZoneIntensity],
    ) -> list[Decision]:
        """One decision per job: start now on the best free device, or hold, or reject."""
        if not jobs:
            return []
        grid = SlotGrid(now, 60, 1)
        cube = score(
            jobs, make_pools(devices), forecasts, grid,
            lifetime_years=self.lifetime_years, cache=self._cache,
            recalibration=self.recalibration,
        )  # fmt: skip
        if self._metric_is_energy():
            metric, what = cube.energy_j, "energy"
        else:
            metric = np.where(
                cube.admissible, cube.operational_g[:, :, 0] + cube.embodied_g, np.inf
            )
            what = "carbon"
        return plan_immediately(
            self.name, cube, metric, now, what, forecasts, self.alternatives,
            self.plan_interval_s,
        )  # fmt: skip


@register_policy("lowest-energy")
@dataclass(frozen=True, slots=True)
class LowestEnergy(_Immediate):
    """Start now on the free device with the least estimated energy."""

    @property
    def name(self) -> str:
        return "lowest-energy"

    def _metric_is_energy(self) -> bool:
        return True


@register_policy("spatial")
@dataclass(frozen=True, slots=True)
class Spatial(_Immediate):
    """Start now on the free device/region with the least estimated carbon."""

    @property
    def name(self) -> str:
        return "spatial"

    def _metric_is_energy(self) -> bool:
        return False
