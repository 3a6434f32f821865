"""The vectorised scorer: the cost of every (job, device pool, start slot) as NumPy arrays.

A *pool* is the set of admissible devices of one GPU type in one region (they share a zone, a
PUE and an estimate). Estimates are computed once per (job, GPU type) and cached
(:mod:`policies.estimates`); intensity means over each job's run are read from the zone's
cumulative integral for all start slots at once; grams come from
:mod:`policies.footprint.accounting`'s formula in one compiled pass over the cells
(:func:`_cells`). The result agrees with the scalar :func:`policies.placement.place` cell by
cell (a test checks it).

Shapes: ``J`` jobs, ``P`` pools, ``S`` start slots; slot ``s`` starts at
``grid.start + s * grid.step_s``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

import numpy as np
import numpy.typing as npt

from policies.compiled import compiled
from policies.errors import PoliciesError
from policies.estimates import EstimateCache, estimate_matrix
from policies.footprint.accounting import (
    DEFAULT_LIFETIME_YEARS,
    J_PER_KWH,
    embodied_g,
    operational_g,
)
from policies.footprint.gpus import GpuSpec
from policies.footprint.recalibration import Recalibration
from policies.means import ZoneSeries, pool_means
from policies.types import Device, JobSpec, ZoneIntensity

__all__ = [
    "CostCube",
    "MissingForecastError",
    "Pool",
    "SlotGrid",
    "horizon_means",
    "make_pools",
    "now_means",
    "score",
    "seconds_to_deadline",
    "typical_g",
    "upper_values",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class MissingForecastError(PoliciesError, LookupError):
    """A device's zone has no intensity forecast."""


@dataclass(frozen=True, slots=True)
class Pool:
    """The devices of one GPU type in one region (same zone, PUE and estimate)."""

    region: str
    zone: str
    gpu: GpuSpec
    pue: float
    devices: tuple[Device, ...]

    @property
    def size(self) -> int:
        """Available devices in the pool."""
        return sum(1 for d in self.devices if d.available)


@dataclass(frozen=True, slots=True)
class SlotGrid:
    """``count`` start slots of ``step_s`` seconds anchored at ``start``.

    Slot ``s`` starts ``max(s * step_s, first_offset_s)`` seconds after ``start``: with
    :meth:`aligned` the anchor is a whole multiple of ``step_s`` and slot 0 is ``now``, so
    planned start times stay the same from one tick to the next.
    """

    start: datetime
    step_s: int
    count: int
    first_offset_s: float = 0.0

    @classmethod
    def aligned(cls, now: datetime, step_s: int, count: int) -> SlotGrid:
        """Slots on the ``step_s`` boundaries of the epoch, slot 0 being ``now``."""
        into = now.timestamp() % step_s
        return cls(now - timedelta(seconds=into), step_s, count, into)

    def time(self, slot: int) -> datetime:
        """The start of ``slot``."""
        return self.start + timedelta(seconds=max(slot * self.step_s, self.first_offset_s))

    @property
    def offsets_s(self) -> FloatArray:
        """Slot starts in seconds after ``start``, shape ``(S,)``."""
        offsets = np.arange(self.count, dtype=np.float64) * self.step_s
        result: FloatArray = np.maximum(offsets, self.first_offset_s)
        return result


def make_pools(devices: Sequence[Device]) -> tuple[Pool, ...]:
    """Group ``devices`` into pools by (region, GPU type), sorted by region then GPU name."""

    def key(device: Device) -> tuple[str, str]:
        return device.region, device.gpu.name

    pools = []
    for (region, _), group in groupby(sorted(devices, key=key), key=key):
        members = tuple(sorted(group, key=lambda d: d.device_id))
        first = members[0]
        pools.append(Pool(region, first.zone, first.gpu, first.pue, members))
    return tuple(pools)


def upper_values(forecast: ZoneIntensity) -> FloatArray | None:
    """The forecast's pessimistic bound (``upper_g_per_kwh``) when it carries one."""
    upper = getattr(forecast, "upper_g_per_kwh", None)
    return None if upper is None else np.asarray(upper, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class CostCube:
    """Every (job, pool, slot) scored. Arrays are ``(J, P)`` or ``(J, P, S)``.

    ``total_g`` is ``inf`` where the cell is not allowed: the pool is inadmissible for the job
    or the slot starts after the job's latest safe start on that pool.
    ``latest_start_s`` is that latest safe start in seconds after ``grid.start`` (0 for a job
    without a deadline: it runs as soon as possible), ``planning_g`` the cost planners minimise
    (``total_g`` with forecast risk).
    """

    jobs: tuple[JobSpec, ...]
    pools: tuple[Pool, ...]
    grid: SlotGrid
    duration_s: FloatArray
    energy_j: FloatArray
    admissible: BoolArray
    latest_start_s: FloatArray
    intensity_g_per_kwh: FloatArray
    operational_g: FloatArray
    embodied_g: FloatArray
    total_g: FloatArray
    planning_g: FloatArray


def _forecast(forecasts: Mapping[str, ZoneIntensity], zone: str) -> ZoneIntensity:
    try:
        return forecasts[zone]
    except KeyError:
        raise MissingForecastError(f"no intensity forecast for zone {zone!r}") from None


def typical_g(
    jobs: Sequence[JobSpec],
    pools: Sequence[Pool],
    forecasts: Mapping[str, ZoneIntensity],
    grid: SlotGrid,
    estimates: tuple[FloatArray, FloatArray, BoolArray],
    lifetime_years: float = DEFAULT_LIFETIME_YEARS,
) -> FloatArray:
    """Grams of every (job, pool) at the pool's mean forecast over the horizon, shape
    ``(J, P)``, ``inf`` where inadmissible: what the job costs there at a typical time.

    Raises:
        MissingForecastError: a pool's zone has no forecast.
    """
    duration, energy, ok = estimates
    mean = horizon_means(pools, forecasts, grid)
    pue = np.array([pool.pue for pool in pools])
    energy_j: FloatArray = np.where(ok, energy, 0.0)
    op = operational_g(energy_j, mean[None, :], pue[None, :])  # type: ignore[arg-type]
    emb = _embodied(jobs, pools, duration, ok, lifetime_years)
    out: FloatArray = np.where(ok, op + emb, np.inf)
    return out


def horizon_means(
    pools: Sequence[Pool], forecasts: Mapping[str, ZoneIntensity], grid: SlotGrid
) -> FloatArray:
    """Each pool's mean forecast from slot 0's start to the horizon's end, ``(P,)``: the
    intensity of :func:`typical_g`.

    Raises:
        MissingForecastError: a pool's zone has no forecast.
    """
    first_s = grid.offsets_s[:1]
    span_s = np.full((1, len(pools)), grid.count * grid.step_s - first_s[0])
    out: FloatArray = pool_means(_series(pools, forecasts, grid, upper=False), first_s, span_s)
    return out[:, 0, 0]


def _embodied(
    jobs: Sequence[JobSpec], pools: Sequence[Pool], duration: FloatArray, ok: BoolArray,
    lifetime_years: float,
) -> FloatArray:  # fmt: skip
    """Embodied grams per (job, pool): the job's devices held for its run, 0 where
    inadmissible."""
    tp = np.array([job.workload.tensor_parallel for job in jobs], dtype=np.float64)[:, None]
    gpu_g = np.array([pool.gpu.embodied_g for pool in pools], dtype=np.float64)
    out: FloatArray = embodied_g(np.where(ok, duration, 0.0), gpu_g[None, :] * tp, lifetime_years)
    return out


def _hedged(
    pools: Sequence[Pool], forecasts: Mapping[str, ZoneIntensity], risk_aversion: float
) -> bool:
    """Whether planning costs weigh in a pessimistic bound (some pool's forecast has one)."""
    return risk_aversion > 0 and any(upper_values(forecasts[p.zone]) is not None for p in pools)


def _zone_means(
    pools: Sequence[Pool],
    forecasts: Mapping[str, ZoneIntensity],
    grid: SlotGrid,
    starts_s: FloatArray,
    duration: FloatArray,
    hedged: bool,
) -> tuple[FloatArray, FloatArray | None]:
    """Mean intensity per (pool, job, start) and, when ``hedged``, the pessimistic mean
    (from each forecast's bound where it has one), both ``(P, J, S)``: one
    :func:`pool_means` pass for both."""
    series = _series(pools, forecasts, grid, upper=False)
    if not hedged:
        return pool_means(series, starts_s, duration), None
    series += _series(pools, forecasts, grid, upper=True)
    both = pool_means(series, starts_s, np.concatenate((duration, duration), axis=1))
    return both[: len(pools)], both[len(pools) :]


def _series(
    pools: Sequence[Pool], forecasts: Mapping[str, ZoneIntensity], grid: SlotGrid, upper: bool
) -> list[ZoneSeries]:
    """Each pool's forecast (or its pessimistic bound) as :func:`pool_means` reads it."""
    out = []
    for pool in pools:
        forecast = _forecast(forecasts, pool.zone)
        values = upper_values(forecast) if upper else None
        if values is None:
            values = np.asarray(forecast.values_g_per_kwh, dtype=np.float64)
        offset = (forecast.start - grid.start).total_seconds()
        out.append(ZoneSeries((pool.zone, pool.gpu.name, upper), values, forecast.step_s, offset))
    return out


def seconds_to_deadline(jobs: Sequence[JobSpec], origin: datetime) -> FloatArray:
    """Seconds from ``origin`` to each job's deadline, ``(J,)``; ``inf`` for a job without one."""
    return np.array([
        math.inf if job.deadline is None else (job.deadline - origin).total_seconds()
        for job in jobs
    ], dtype=np.float64)  # fmt: skip


def _latest(
    jobs: Sequence[JobSpec], grid: SlotGrid, duration: FloatArray, margin: float, guard_s: float
) -> FloatArray:
    """Latest safe start per (job, pool), seconds after ``grid.start``."""
    deadlines_s = np.array([
        math.nan if job.deadline is None else (job.deadline - grid.start).total_seconds()
        for job in jobs
    ], dtype=np.float64)  # fmt: skip
    deadlines = deadlines_s.reshape(len(jobs), 1)
    # No deadline means "as soon as possible" (DESIGN.md): such a job may move in space (any
    # admissible pool free now) but not in time, so its latest start is the first slot.
    with np.errstate(invalid="ignore"):  # NaN deadline or an OOM (infinite) duration
        latest = deadlines - duration * (1.0 + margin) - guard_s
    result: FloatArray = np.where(np.isnan(deadlines), grid.offsets_s[0], latest)  # slot 0: now
    return result


def now_means(
    pools: Sequence[Pool],
    forecasts: Mapping[str, ZoneIntensity],
    grid: SlotGrid,
    duration: FloatArray,
    risk_aversion: float = 0.0,
) -> tuple[FloatArray, FloatArray | None]:
    """Each pool's forecast mean over each job's run from slot 0's start, ``(P, J)`` (the
    jobs' durations ``(J, P)``), and the pessimistic bound's where :func:`score` hedges
    (None: it does not): slot 0 of the cube's means, for planners that keep the later slots
    between ticks and score slot 0 again (:mod:`policies.now_cells`).

    Raises:
        MissingForecastError: a pool's zone has no forecast.
    """
    hedged = _hedged(pools, forecasts, risk_aversion)
    means, upper = _zone_means(pools, forecasts, grid, grid.offsets_s[:1], duration, hedged)
    return means[:, :, 0], None if upper is None else upper[:, :, 0]


def score(
    jobs: Sequence[JobSpec],
    pools: Sequence[Pool],
    forecasts: Mapping[str, ZoneIntensity],
    grid: SlotGrid,
    *,
    lifetime_years: float = DEFAULT_LIFETIME_YEARS,
    duration_margin: float = 0.0,
    guard_s: float = 0.0,
    risk_aversion: float = 0.0,
    cache: EstimateCache | None = None,
    estimates: tuple[FloatArray, FloatArray, BoolArray] | None = None,
    recalibration: Recalibration | None = None,
    mask_latest: bool = True,
) -> CostCube:
    """Score every (job, pool, slot).

    Args:
        duration_margin: relative allowance for estimate error: a job may start no later than
            ``deadline - duration * (1 + duration_margin) - guard_s``.
        guard_s: absolute allowance (e.g. one planning tick), seconds.
        estimates: the jobs' :func:`estimate_matrix` when the caller has it already.
        recalibration: factors learned from measured outcomes, applied to the estimates.
        risk_aversion: weight in [0, 1] of the forecast's pessimistic bound in ``planning_g``
            (0: plan on the point forecast; ignored for forecasts without a bound).
        mask_latest: False: ``total_g`` and ``planning_g`` are not ``inf`` after the latest
            safe start (for callers that apply ``latest_start_s`` themselves).

    Raises:
        MissingForecastError: a pool's zone has no forecast.
    """
    jobs, pools = tuple(jobs), tuple(pools)
    duration, energy, ok = estimates or estimate_matrix(jobs, pools, cache, recalibration)
    latest = _latest(jobs, grid, duration, duration_margin, guard_s)
    hedged = _hedged(pools, forecasts, risk_aversion)
    means, upper = _zone_means(pools, forecasts, grid, grid.offsets_s, duration, hedged)
    pue = np.array([pool.pue for pool in pools], dtype=np.float64)
    emb = _embodied(jobs, pools, duration, ok, lifetime_years)
    shape = (len(jobs), len(pools), grid.count)
    op, total = np.empty(shape), np.empty(shape)
    planning = total if upper is None else np.empty(shape)
    pessimistic = means if upper is None else upper
    _cells(means, pessimistic, upper is not None, float(risk_aversion), energy, ok, emb, pue,
           grid.offsets_s, latest, mask_latest, op, total, planning)  # fmt: skip
    mean = means.transpose(1, 0, 2)
    return CostCube(jobs, pools, grid, duration, energy, ok, latest, mean, op, emb, total, planning)


@compiled
def _cells(means, upper, hedged, risk, energy, ok, emb, pue, offsets, latest, mask,  # type: ignore[no-untyped-def]
           op, total, planning):  # fmt: skip
    """The cube's grams, cell by cell into ``op``, ``total`` and (``hedged``) ``planning``,
    all ``(J, P, S)``, from the means ``(P, J, S)`` (and the pessimistic bound's, ``upper``):
    the NumPy expressions they replace, in their order (``operational_g`` on the admissible
    energy, each pool's PUE, plus the embodied grams; ``inf`` where the pool is not admissible
    or, with ``mask``, the slot starts after the latest safe start), so the values are equal bit
    for bit (tests compare them). One pass and no temporaries: a cube of 10,000 jobs holds
    tens of millions of cells, a tick's new jobs a few thousand."""
    for j in range(op.shape[0]):
        for p in range(op.shape[1]):
            e = energy[j, p] if ok[j, p] else 0.0
            late, embodied = latest[j, p], emb[j, p]
            for s in range(op.shape[2]):
                m = means[p, j, s]
                o = e / J_PER_KWH * m * pue[p]
                op[j, p, s] = o
                allowed = ok[j, p] and (not mask or offsets[s] <= late)
                total[j, p, s] = o + embodied if allowed else np.inf
                if hedged:
                    hedge = m + risk * (upper[p, j, s] - m)
                    grams = e / J_PER_KWH * hedge * pue[p] + embodied
                    planning[j, p, s] = grams if allowed else np.inf
