"""On-site energy: PV, an optional battery, the site's other load and the grid, step by step.

Every step of ``step_s`` seconds (powers held constant over the step):

1. PV serves the site's other load first, then the GPU load (the GPUs get what the rest of
   the site leaves: the marginal view, so moving GPU work never takes PV from other users).
2. PV left over charges the battery (up to its charge power and its headroom); what the
   battery cannot take is curtailed (or exported: carbond credits nothing for it).
3. Load PV does not cover is served by the battery (down to its minimum state of charge, up
   to its discharge power), other load first, then the GPUs; the rest comes from the grid.

The battery charges from PV only. Its round-trip efficiency is split evenly between charging
and discharging (``sqrt`` each way), so ``charge_j`` is energy taken from PV and
``discharge_j`` energy delivered to the load. Every step balances exactly::

    pv_j + discharge_j + grid_j == other_j + gpu_j + charge_j + curtailed_j

Only grid energy is charged at the grid's intensity; PV and battery energy carry the
life-cycle factors of :class:`SiteFactors`. "GPU load" here is facility load: the GPUs' energy
times the site's PUE, as :func:`policies.footprint.accounting.operational_g` charges it.

:func:`effective_intensity` turns a grid forecast into the intensity of the next kWh at the
site, for planners: grid blended with the PV that would be curtailed and the battery energy no
committed load needs, each shared over the free GPU capacity so that no set of jobs running
together can be priced on more surplus than there is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from policies.errors import PoliciesError

__all__ = [
    "DEFAULT_BATTERY_G_PER_KWH",
    "DEFAULT_PV_G_PER_KWH",
    "Battery",
    "JobSplit",
    "SiteError",
    "SiteFactors",
    "SiteFlows",
    "dispatch",
    "effective_intensity",
    "split_jobs",
]

FloatArray = npt.NDArray[np.float64]

J_PER_KWH: Final = 3_600_000
# IPCC AR5 WG3 Annex III (2014), median life-cycle emissions of rooftop solar PV.
DEFAULT_PV_G_PER_KWH: Final = 41.0
# Storage adds its own manufacture to the PV energy it shifts; no consensus figure per kWh
# delivered exists, so the default charges battery energy like the PV it came from.
DEFAULT_BATTERY_G_PER_KWH: Final = 41.0


class SiteError(PoliciesError, ValueError):
    """A site model parameter is out of range (the message names it)."""


@dataclass(frozen=True, slots=True)
class Battery:
    """A stationary battery charged from on-site PV only.

    ``min_soc`` and ``initial_soc`` are fractions of ``capacity_kwh``; the battery never goes
    below ``min_soc`` nor above 1.
    """

    capacity_kwh: float
    charge_power_w: float
    discharge_power_w: float
    round_trip_efficiency: float = 0.9
    min_soc: float = 0.1
    initial_soc: float = 0.5

    def __post_init__(self) -> None:
        checks = (
            ("capacity_kwh", self.capacity_kwh > 0),
            ("charge_power_w", self.charge_power_w >= 0),
            ("discharge_power_w", self.discharge_power_w >= 0),
            ("round_trip_efficiency", 0 < self.round_trip_efficiency <= 1),
            ("min_soc", 0 <= self.min_soc < 1),
            ("initial_soc", self.min_soc <= self.initial_soc <= 1),
        )
        for name, ok in checks:
            if not ok or not math.isfinite(getattr(self, name)):
                raise SiteError(f"battery.{name} out of range: {getattr(self, name)!r}")

    @property
    def capacity_j(self) -> float:
        """Capacity in joules."""
        return self.capacity_kwh * J_PER_KWH

    @property
    def one_way_efficiency(self) -> float:
        """Charging (and discharging) efficiency: the square root of the round trip."""
        return math.sqrt(self.round_trip_efficiency)


@dataclass(frozen=True, slots=True)
class SiteFactors:
    """Life-cycle intensity of on-site energy, gCO2e per kWh delivered."""

    pv_g_per_kwh: float = DEFAULT_PV_G_PER_KWH
    battery_g_per_kwh: float = DEFAULT_BATTERY_G_PER_KWH

    def __post_init__(self) -> None:
        for name in ("pv_g_per_kwh", "battery_g_per_kwh"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise SiteError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class SiteFlows:
    """Energy flows of every step (J per step, arrays of shape ``(n,)``).

    ``soc`` has ``n + 1`` entries: the state of charge (fraction) at each step boundary
    (all zeros without a battery). ``gpu_pv_j + gpu_battery_j + gpu_grid_j == gpu_j``.
    """

    step_s: float
    pv_j: FloatArray
    other_j: FloatArray
    gpu_j: FloatArray
    charge_j: FloatArray
    discharge_j: FloatArray
    grid_j: FloatArray
    curtailed_j: FloatArray
    soc: FloatArray
    gpu_pv_j: FloatArray
    gpu_battery_j: FloatArray
    gpu_grid_j: FloatArray

    def imbalance_j(self) -> FloatArray:
        """Sources minus sinks per step (zero up to rounding)."""
        sources = self.pv_j + self.discharge_j + self.grid_j
        sinks = self.other_j + self.gpu_j + self.charge_j + self.curtailed_j
        result: FloatArray = sources - sinks
        return result

    @property
    def offset(self) -> float:
        """Share of the GPU energy covered on site (PV + battery), 0 when there is none."""
        total = float(self.gpu_j.sum())
        return float((self.gpu_pv_j.sum() + self.gpu_battery_j.sum()) / total) if total else 0.0


def _as_steps(values: npt.ArrayLike, n: int, name: str) -> FloatArray:
    array = np.broadcast_to(np.asarray(values, dtype=np.float64), (n,)).copy()
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise SiteError(f"{name} must be finite and >= 0 at every step")
    return array


def dispatch(
    pv_w: npt.ArrayLike,
    gpu_w: npt.ArrayLike,
    other_w: npt.ArrayLike,
    step_s: float,
    battery: Battery | None = None,
    initial_soc: float | None = None,
    first_step_s: float | None = None,
) -> SiteFlows:
    """The site's flows over ``n`` steps (``n`` = the longest of the arrays; scalars repeat).

    Args:
        pv_w: PV generation, W (mean over each step).
        gpu_w: GPU (facility) load, W.
        other_w: the site's other load, W.
        step_s: step length, seconds.
        battery: the battery, or None.
        initial_soc: state of charge at the start (default ``battery.initial_soc``).
        first_step_s: the first step's length, if shorter (a forecast's current step from now,
            the state of charge being now's); flows for :func:`split_jobs` have none.

    Raises:
        SiteError: a negative or non-finite power, a bad step or state of charge.
    """
    n = max(np.size(pv_w), np.size(gpu_w), np.size(other_w))
    steps = _durations(step_s, n, first_step_s)
    pv = _as_steps(pv_w, n, "pv_w") * steps
    gpu = _as_steps(gpu_w, n, "gpu_w") * steps
    other = _as_steps(other_w, n, "other_w") * steps
    pv_other = np.minimum(pv, other)
    pv_gpu = np.minimum(pv - pv_other, gpu)
    surplus = pv - pv_other - pv_gpu
    need_other = other - pv_other
    need_gpu = gpu - pv_gpu
    charge = np.zeros(n)
    discharge = np.zeros(n)
    soc = np.zeros(n + 1)
    if battery is not None:
        soc0 = battery.initial_soc if initial_soc is None else initial_soc
        if not battery.min_soc - 1e-9 <= soc0 <= 1 + 1e-9:
            raise SiteError(f"initial_soc {soc0!r} outside [{battery.min_soc}, 1]")
        _run_battery(battery, steps, surplus, need_other + need_gpu, soc0, charge, discharge, soc)
    dis_other = np.minimum(discharge, need_other)
    dis_gpu = discharge - dis_other
    grid_other = need_other - dis_other
    grid_gpu = need_gpu - dis_gpu
    return SiteFlows(
        step_s=float(step_s), pv_j=pv, other_j=other, gpu_j=gpu, charge_j=charge,
        discharge_j=discharge, grid_j=grid_other + grid_gpu, curtailed_j=surplus - charge,
        soc=soc, gpu_pv_j=pv_gpu, gpu_battery_j=dis_gpu, gpu_grid_j=grid_gpu,
    )  # fmt: skip


def _durations(step_s: float, n: int, first_step_s: float | None) -> FloatArray:
    """Each step's length, s: ``step_s``, the first ``first_step_s`` where given."""
    if not (math.isfinite(step_s) and step_s > 0):
        raise SiteError(f"step_s must be > 0, got {step_s!r}")
    if first_step_s is not None and not 0 <= first_step_s <= step_s:
        raise SiteError(f"first_step_s {first_step_s!r} outside [0, {step_s!r}]")
    steps = np.full(n, float(step_s))
    steps[:1] = step_s if first_step_s is None else first_step_s
    return steps


def _run_battery(
    battery: Battery,
    steps_s: FloatArray,
    surplus_j: FloatArray,
    deficit_j: FloatArray,
    soc0: float,
    charge_j: FloatArray,
    discharge_j: FloatArray,
    soc: FloatArray,
) -> None:
    """Fill ``charge_j``, ``discharge_j`` and ``soc`` step by step (the only sequential part)."""
    capacity = battery.capacity_j
    eta = battery.one_way_efficiency
    floor = battery.min_soc * capacity
    max_in = battery.charge_power_w * steps_s
    max_out = battery.discharge_power_w * steps_s
    stored = min(max(soc0, battery.min_soc), 1.0) * capacity
    soc[0] = stored / capacity
    for k in range(len(surplus_j)):
        if surplus_j[k] > 0:
            taken = min(surplus_j[k], max_in[k], (capacity - stored) / eta)
            charge_j[k] = taken
            stored = min(stored + taken * eta, capacity)
        elif deficit_j[k] > 0:
            given = min(deficit_j[k], max_out[k], max(stored - floor, 0.0) * eta)
            discharge_j[k] = given
            stored = max(stored - given / eta, floor)
        soc[k + 1] = stored / capacity


def _window_means(
    values: FloatArray, step_s: float, starts_s: FloatArray, durations_s: FloatArray
) -> FloatArray:
    """Time-weighted mean of the step function ``values`` over each ``[start, start + d]``
    (seconds from the first step; outside the steps the nearest value holds)."""
    n = len(values)
    cum = np.concatenate(([0.0], np.cumsum(values)))

    def integral(x: FloatArray) -> FloatArray:
        clipped = np.clip(x, 0.0, float(n))
        k = np.minimum(clipped.astype(np.int64), n - 1)
        inside: FloatArray = cum[k] + (clipped - k) * values[k]
        edges: FloatArray = np.minimum(x, 0.0) * values[0] + np.maximum(x - n, 0.0) * values[-1]
        return inside + edges

    x0 = np.asarray(starts_s, dtype=np.float64) / step_s
    span = np.asarray(durations_s, dtype=np.float64) / step_s
    safe = np.where(span > 0, span, 1.0)
    means = (integral(x0 + safe) - integral(x0)) / safe
    at_start = values[np.clip(np.floor(x0).astype(np.int64), 0, n - 1)]
    result: FloatArray = np.where(span > 0, means, at_start)
    return result


@dataclass(frozen=True, slots=True)
class JobSplit:
    """Each job's facility energy split by source (J) and its operational grams."""

    pv_j: FloatArray
    battery_j: FloatArray
    grid_j: FloatArray
    grid_intensity_g_per_kwh: FloatArray  # mean grid intensity over the job's grid energy
    operational_g: FloatArray

    @property
    def offset(self) -> FloatArray:
        """Share of each job's energy covered on site (0 for a job without energy)."""
        total = self.pv_j + self.battery_j + self.grid_j
        result: FloatArray = np.where(
            total > 0, (self.pv_j + self.battery_j) / np.where(total > 0, total, 1.0), 0.0
        )
        return result


def split_jobs(
    flows: SiteFlows,
    grid_g_per_kwh: npt.ArrayLike,
    factors: SiteFactors,
    starts_s: npt.ArrayLike,
    durations_s: npt.ArrayLike,
    energy_j: npt.ArrayLike,
) -> JobSplit:
    """Split each job's facility energy ``energy_j`` (constant power over its run, which
    starts ``starts_s`` after the flows' first step) by the GPU shares of the steps it spans.

    Jobs running together in a step share its PV, battery and grid energy pro rata. Grid
    energy is charged at ``grid_g_per_kwh`` (one value per step), the rest at ``factors``.
    """
    gpu = flows.gpu_j
    safe = np.where(gpu > 0, gpu, 1.0)
    pv_frac = np.where(gpu > 0, flows.gpu_pv_j / safe, 0.0)
    bat_frac = np.where(gpu > 0, flows.gpu_battery_j / safe, 0.0)
    grid_frac = np.where(gpu > 0, flows.gpu_grid_j / safe, 1.0)
    intensity = _as_steps(grid_g_per_kwh, len(gpu), "grid_g_per_kwh")
    starts = np.asarray(starts_s, dtype=np.float64)
    durations = np.asarray(durations_s, dtype=np.float64)
    energy = np.asarray(energy_j, dtype=np.float64)
    pv = energy * _window_means(pv_frac, flows.step_s, starts, durations)
    battery = energy * _window_means(bat_frac, flows.step_s, starts, durations)
    grid = np.maximum(energy - pv - battery, 0.0)
    grid_g = energy * _window_means(grid_frac * intensity, flows.step_s, starts, durations)
    grid_g /= J_PER_KWH
    mean_ci = np.where(grid > 0, grid_g * J_PER_KWH / np.where(grid > 0, grid, 1.0), 0.0)
    operational = (
        grid_g + (pv * factors.pv_g_per_kwh + battery * factors.battery_g_per_kwh) / J_PER_KWH
    )
    return JobSplit(pv, battery, grid, mean_ci, operational)


def _spare_battery_j(
    battery: Battery, flows: SiteFlows, grid: FloatArray, spare_pv_j: FloatArray, steps: FloatArray
) -> FloatArray:
    """Battery energy deliverable at each step that no committed load needs later, given to
    the dirtiest grid steps first. Taking ``e`` at step ``h`` lowers the stored energy at every
    later step by ``e``, so allocations up to step ``k`` never exceed what is stored above the
    floor at the end of ``k`` (later recharging is ignored: conservative)."""
    n = len(grid)
    eta = battery.one_way_efficiency
    floor = battery.min_soc * battery.capacity_j
    room = np.maximum(flows.soc[1:] * battery.capacity_j - floor, 0.0) * eta  # (n,)
    headroom = np.maximum(battery.discharge_power_w * steps - flows.discharge_j, 0.0)
    alloc = np.zeros(n)
    for h in np.argsort(-grid, kind="stable"):
        if spare_pv_j[h] > 0:  # PV is spare then: the battery is not the next kWh
            continue
        used = np.cumsum(alloc)
        free_after = float(np.min(room[h:] - used[h:]))
        alloc[h] = max(min(headroom[h], free_after), 0.0)
    return alloc


def effective_intensity(
    grid_g_per_kwh: npt.ArrayLike,
    pv_w: npt.ArrayLike,
    other_w: npt.ArrayLike,
    committed_w: npt.ArrayLike,
    free_w: npt.ArrayLike,
    step_s: float,
    factors: SiteFactors,
    battery: Battery | None = None,
    soc_now: float | None = None,
    first_step_s: float | None = None,
) -> FloatArray:
    """The intensity (g/kWh) of the next GPU kWh at the site, per step of a forecast.

    The committed load (jobs already running, ``committed_w``) is dispatched first from the
    battery's state ``soc_now`` (over the first step's last ``first_step_s``, if given). Left
    on site — PV that would be curtailed, battery energy no committed load needs — is shared
    over the free GPU capacity ``free_w`` (facility power of every GPU that could take new
    work then): a fraction ``s = min(1, spare / free_w)`` of a new job's energy is priced at
    the on-site factor, the rest at the grid's. Jobs running together use at most ``free_w``,
    so together they are never priced on more surplus than the site has (none counted twice).

    Raises:
        SiteError: negative or non-finite inputs.
    """
    grid = np.asarray(grid_g_per_kwh, dtype=np.float64)
    n = len(grid)
    flows = dispatch(
        _as_steps(pv_w, n, "pv_w"), _as_steps(committed_w, n, "committed_w"),
        _as_steps(other_w, n, "other_w"), step_s, battery, soc_now, first_step_s,
    )  # fmt: skip
    steps = _durations(step_s, n, first_step_s)
    free = _as_steps(free_w, n, "free_w") * steps
    spare_pv = flows.curtailed_j
    spare_bat = np.zeros(n)
    if battery is not None:
        spare_bat = _spare_battery_j(battery, flows, grid, spare_pv, steps)
    safe = np.where(free > 0, free, 1.0)
    s_pv = np.where(free > 0, np.minimum(1.0, spare_pv / safe), 0.0)
    s_bat = np.where(free > 0, np.minimum(1.0 - s_pv, spare_bat / safe), 0.0)
    result: FloatArray = (
        grid + s_pv * (factors.pv_g_per_kwh - grid) + s_bat * (factors.battery_g_per_kwh - grid)
    )
    return result
