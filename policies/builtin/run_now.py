"""``run-now``: the carbon-agnostic baseline of a plain FIFO cluster.

Start each job as soon as enough GPUs it fits on are free, preferring the fastest; jobs are
taken in priority order, then submission order. Carbon is computed only to report it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from policies.base import register_policy
from policies.candidates import device_groups, estimate_on, is_free, unfit_reason
from policies.footprint.accounting import DEFAULT_LIFETIME_YEARS
from policies.footprint.estimator import Estimate
from policies.footprint.recalibration import Recalibration
from policies.parameters import LIFETIME_CHECK, check_fields
from policies.placement import place
from policies.types import Decision, Device, JobSpec, ZoneIntensity

__all__ = ["RunNow"]


@register_policy("run-now")
@dataclass(frozen=True, slots=True)
class RunNow:
    """Start at once on the fastest free device; carbon-agnostic."""

    lifetime_years: float = DEFAULT_LIFETIME_YEARS
    name: str = "run-now"
    recalibration: Recalibration | None = None  # online factors from measured outcomes

    def __post_init__(self) -> None:
        check_fields(self, (LIFETIME_CHECK,))

    def plan(
        self,
        now: datetime,
        jobs: Sequence[JobSpec],
        devices: Sequence[Device],
        forecasts: Mapping[str, ZoneIntensity],
    ) -> list[Decision]:
        taken: set[str] = set()
        decisions = []
        pools = _Pools(devices)
        for job in sorted(jobs, key=lambda j: (-j.priority, j.submitted_at, j.job_id)):
            decisions.append(self._plan_one(now, job, pools, forecasts, taken))
        order = {job.job_id: i for i, job in enumerate(jobs)}
        return sorted(decisions, key=lambda d: order[d.job_id])

    def _plan_one(
        self,
        now: datetime,
        job: JobSpec,
        pools: _Pools,
        forecasts: Mapping[str, ZoneIntensity],
        taken: set[str],
    ) -> Decision:
        need = job.workload.tensor_parallel
        fitting = []
        devices = pools.devices
        on_gpu: dict[int, Estimate] = {}  # pools of one GPU type (the same spec) share it
        for pool in pools.of(job):
            gpu = pool[0].gpu
            est = on_gpu.get(id(gpu))
            if est is None:
                est = on_gpu[id(gpu)] = estimate_on(job, pool[0], self.recalibration)
            if est.fits and len(pool) >= need:
                fitting.append((est.duration_s, pool, est))
        if not fitting:
            return Decision(job.job_id, "reject", unfit_reason(job, devices), self.name)
        for _, pool, est in sorted(fitting, key=lambda item: item[0]):
            free = [d for d in pool if is_free(d, now) and d.device_id not in taken]
            if len(free) >= need:
                chosen = tuple(free[:need])
                taken.update(d.device_id for d in chosen)
                alt = place(est, chosen, now, forecasts[chosen[0].zone], self.lifetime_years)
                reason = f"fastest free fitting device: {alt.gpu} in {alt.region}"
                return Decision(job.job_id, "start", reason, self.name, alt, alt)
        return Decision(job.job_id, "hold", "waiting for a free fitting GPU", self.name)


class _Pools:
    """A round's :func:`device_groups`, made once per distinct set of job constraints (the
    groups depend on the devices and on which regions and GPU types the job allows, and its
    memory, only: the order it lists its regions in does not matter)."""

    def __init__(self, devices: Sequence[Device]) -> None:
        self.devices = devices
        self._by_constraints: dict[object, tuple[tuple[Device, ...], ...]] = {}

    def of(self, job: JobSpec) -> tuple[tuple[Device, ...], ...]:
        key = (frozenset(job.regions), job.gpu_types, job.min_gpu_memory_gb)
        groups = self._by_constraints.get(key)
        if groups is None:
            groups = self._by_constraints[key] = tuple(device_groups(job, self.devices))
        return groups
