"""Online recalibration of the estimator from measured outcomes, per (model, GPU type).

For every finished job the daemon feeds an :class:`Observation`: the *uncalibrated* estimate
(the estimator's raw output, so corrections never feed back on themselves) and what was measured.
The factor is the geometric mean ratio measured / estimated, robustly:

- **bounded outliers**: each log-ratio is clipped to ``±log(max_ratio)``; once a factor is
  established (in use: ``min_samples`` and ``min_measured_s``), a new log-ratio may move at
  most ``±log(1 + max_step)`` away from the current factor before it is averaged in;
- **minimum evidence**: below ``min_samples`` observations, or below ``min_measured_s``
  seconds of measured run time in all, the factor in use stays 1.0 (a few short jobs are
  dominated by start-up and by how their end was noticed, not by steady serving);
- **usable samples only**: an observation whose energy or duration ratio is unusable (not
  finite, or a value <= 0, e.g. a meter that read 0 J) is ignored as a whole, so every sample
  counted is evidence for both factors;
- **decay**: until the factor is established the observations are averaged weighted by their
  measured run time (runs of equal length equally: a few short runs then weigh little beside
  a long one); then the ``n``-th has weight ``1 / n`` until that is below ``decay``, and
  ``decay`` from then on (an exponential moving average), so the factor follows hardware or
  software changes and old evidence fades.

Energy and duration are calibrated separately. All values are frozen; ``updated`` returns a new
:class:`Recalibration`. The estimate used at decision time is whatever the caller stored then.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from policies.errors import InvalidOutcomeError
from policies.footprint.calibration import EstimateInterval
from policies.footprint.estimator import Estimate

__all__ = [
    "DEFAULT_RECALIBRATION",
    "Observation",
    "Recalibration",
    "RecalibrationConfig",
    "RecalibrationFactor",
]


@dataclass(frozen=True, slots=True)
class RecalibrationConfig:
    """How fast and how robustly factors move (see the module docstring)."""

    min_samples: int = 3
    min_measured_s: float = 600.0
    max_ratio: float = 4.0
    max_step: float = 0.5
    decay: float = 0.2

    def __post_init__(self) -> None:
        if (
            self.min_samples < 1
            or self.max_ratio <= 1
            or self.max_step <= 0
            or not self.min_measured_s >= 0
        ):
            raise InvalidOutcomeError(
                f"recalibration: need min_samples >= 1, min_measured_s >= 0, max_ratio > 1, "
                f"max_step > 0; got {self.min_samples}, {self.min_measured_s}, "
                f"{self.max_ratio}, {self.max_step}"
            )
        if not 0 < self.decay <= 1:
            raise InvalidOutcomeError(f"recalibration: decay must be in (0, 1], got {self.decay}")


DEFAULT_RECALIBRATION = RecalibrationConfig()


@dataclass(frozen=True, slots=True)
class Observation:
    """One finished job: raw estimate and measurement of its energy (J) and duration (s)."""

    model: str
    gpu: str
    estimated_energy_j: float
    measured_energy_j: float
    estimated_duration_s: float
    measured_duration_s: float


@dataclass(frozen=True, slots=True)
class RecalibrationFactor:
    """The learned state for one (model, GPU type): log factors, the sample count and the
    measured run time (s) they cover."""

    model: str
    gpu: str
    samples: int = 0
    energy_log: float = 0.0
    duration_log: float = 0.0
    measured_s: float = 0.0

    @property
    def energy_factor(self) -> float:
        """Measured ÷ estimated energy, learned (whether or not it is yet in use)."""
        return math.exp(self.energy_log)

    @property
    def duration_factor(self) -> float:
        """Measured ÷ estimated duration, learned."""
        return math.exp(self.duration_log)


def _log_ratio(measured: float, estimated: float) -> float | None:
    """log(measured / estimated); None unless both are finite and > 0. A ratio past the
    floats' range is ±inf (``_step`` clips it to ``max_ratio`` as any large one)."""
    if measured > 0 and estimated > 0 and math.isfinite(measured) and math.isfinite(estimated):
        ratio = measured / estimated  # may overflow to inf or underflow to 0
        return math.log(ratio) if ratio > 0 else -math.inf
    return None


def _step(
    current: float, new: float, weight: float, established: bool, config: RecalibrationConfig
) -> float:
    """``current`` moved towards ``new`` (log factors) by ``weight``, ``new`` clipped to
    ``max_ratio`` and, once the factor is ``established``, to ``max_step`` from ``current``."""
    bound = math.log(config.max_ratio)
    new = min(bound, max(-bound, new))
    if established:
        step = math.log1p(config.max_step)
        new = min(current + step, max(current - step, new))
    return current + weight * (new - current)


def _key(model: str, gpu: str) -> tuple[str, str]:
    return model.strip().lower(), gpu.strip().lower()


@dataclass(frozen=True, slots=True)
class Recalibration:
    """Factors per (model, GPU type) (keys are case-insensitive)."""

    config: RecalibrationConfig = DEFAULT_RECALIBRATION
    factors: Mapping[tuple[str, str], RecalibrationFactor] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def from_factors(
        cls,
        factors: Iterable[RecalibrationFactor],
        config: RecalibrationConfig = DEFAULT_RECALIBRATION,
    ) -> Recalibration:
        """Rebuild from stored factors (e.g. the ledger's rows)."""
        return cls(config, MappingProxyType({_key(f.model, f.gpu): f for f in factors}))

    def get(self, model: str, gpu: str) -> RecalibrationFactor:
        """The state for ``(model, gpu)`` (a fresh one, factor 1, if never observed)."""
        return self.factors.get(_key(model, gpu)) or RecalibrationFactor(model, gpu)

    def in_use(self, model: str, gpu: str) -> bool:
        """Whether ``(model, gpu)``'s factors have enough evidence to be used: at least
        ``min_samples`` observations covering ``min_measured_s`` seconds of measured runs."""
        state = self.get(model, gpu)
        return (
            state.samples >= self.config.min_samples
            and state.measured_s >= self.config.min_measured_s
        )

    def energy_factor(self, model: str, gpu: str) -> float:
        """The energy factor in use: 1.0 until :meth:`in_use`."""
        return self.get(model, gpu).energy_factor if self.in_use(model, gpu) else 1.0

    def duration_factor(self, model: str, gpu: str) -> float:
        """The duration factor in use: 1.0 until :meth:`in_use`."""
        return self.get(model, gpu).duration_factor if self.in_use(model, gpu) else 1.0

    def updated(self, observation: Observation) -> Recalibration:
        """A new calibration with ``observation`` folded in; itself when either ratio is
        unusable (a measured energy of 0 J, a NaN, ...): the energy and duration factors share
        one sample count and one measured time, so a run that teaches only one of them would
        count as evidence for the other."""
        state = self.get(observation.model, observation.gpu)
        energy = _log_ratio(observation.measured_energy_j, observation.estimated_energy_j)
        duration = _log_ratio(observation.measured_duration_s, observation.estimated_duration_s)
        if energy is None or duration is None:
            return self
        seconds = observation.measured_duration_s  # finite and > 0: its ratio is usable
        established = self.in_use(observation.model, observation.gpu)
        # Until established, each run weighs its share of the measured time (equal runs:
        # equally), so a few short runs dominated by start-up do not set the factor that the
        # first long run then may move only by max_step; then each new one 1/n, >= decay.
        if established:
            weight = max(1.0 / (state.samples + 1), self.config.decay)
        else:
            weight = seconds / (state.measured_s + seconds)
        new_state = replace(
            state,
            samples=state.samples + 1,
            measured_s=state.measured_s + seconds,
            energy_log=_step(state.energy_log, energy, weight, established, self.config),
            duration_log=_step(state.duration_log, duration, weight, established, self.config),
        )
        factors = dict(self.factors)
        factors[_key(observation.model, observation.gpu)] = new_state
        return Recalibration(self.config, MappingProxyType(factors))

    def apply(self, estimate: Estimate) -> Estimate:
        """``estimate`` with its energy and duration multiplied by the factors in use."""
        if not estimate.fits:
            return estimate
        energy = self.energy_factor(estimate.model, estimate.gpu)
        duration = self.duration_factor(estimate.model, estimate.gpu)
        if energy == 1.0 and duration == 1.0:
            return estimate
        return replace(
            estimate,
            energy_j=estimate.energy_j * energy,
            duration_s=estimate.duration_s * duration,
            prefill_s=estimate.prefill_s * duration,
            decode_s=estimate.decode_s * duration,
            batch_latency_s=estimate.batch_latency_s * duration,
        )

    def apply_interval(self, band: EstimateInterval) -> EstimateInterval:
        """``band`` with its point estimate and 10-90 % bounds scaled by the factors in use."""
        estimate = band.estimate
        if not estimate.fits:
            return band
        energy = self.energy_factor(estimate.model, estimate.gpu)
        duration = self.duration_factor(estimate.model, estimate.gpu)
        if energy == 1.0 and duration == 1.0:
            return band
        return replace(
            band,
            estimate=self.apply(estimate),
            energy_j_p10=band.energy_j_p10 * energy,
            energy_j_p90=band.energy_j_p90 * energy,
            duration_s_p10=band.duration_s_p10 * duration,
            duration_s_p90=band.duration_s_p90 * duration,
        )
