"""Online recalibration of the estimator from measured outcomes, per (model, GPU type, runtime,
precision), falling back to (model, GPU type).

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
- **robust start**: until the factor is established it is the *median* of the observations
  weighted by their measured run time (:func:`weighted_median`; runs of equal length equally,
  so one wild run among the first ``min_samples`` moves nothing; a few short runs weigh little
  beside a long one). The observations are kept for it (``early_energy``, ``early_duration``:
  at most :data:`EARLY_KEPT` points each, the two closest merged into their weighted mean
  beyond that);
- **decay**: once established, the ``n``-th observation has weight ``1 / n`` until that is
  below ``decay``, and ``decay`` from then on (an exponential moving average), so the factor
  follows hardware or software changes and old evidence fades.

Each observation teaches two factors: its **fine** key (model, GPU type, runtime, precision) and
its **coarse** key (model, GPU type; stored with an empty runtime and precision), the factor
carbond kept alone before. A model served by vLLM and run eagerly with Hugging Face on one GPU
type, or in fp16 and fp32, errs differently: one factor for both mixes the two errors and fits
neither. The factor in use for an estimate (:meth:`Recalibration.level`) is its fine key's once
that is established (``min_samples`` runs covering ``min_measured_s``), else its coarse key's
once that is, else 1.0. The batch size is not part of the key: the estimator models it.

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
    "EARLY_KEPT",
    "Key",
    "Observation",
    "Points",
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

EARLY_KEPT = 32
"""The most observations (log ratio, measured seconds) a factor keeps, per ratio, for its
weighted median until it is established (beyond: the two closest are merged)."""

Points = tuple[tuple[float, float], ...]
"""Observations kept for a weighted median: (log ratio, weight in measured seconds), sorted."""

Key = tuple[str, str, str, str]
"""A factor's key: model, GPU type, runtime, precision (stripped, lower case; runtime and
precision empty for the coarse (model, GPU type) factor)."""


@dataclass(frozen=True, slots=True)
class Observation:
    """One finished job: raw estimate and measurement of its energy (J) and duration (s), and
    the runtime and weight precision it ran with (both empty: it teaches the coarse
    (model, GPU type) factor only)."""

    model: str
    gpu: str
    estimated_energy_j: float
    measured_energy_j: float
    estimated_duration_s: float
    measured_duration_s: float
    runtime: str = ""
    precision: str = ""


@dataclass(frozen=True, slots=True)
class RecalibrationFactor:
    """The learned state for one key: (model, GPU type, runtime, precision), or (model, GPU
    type) alone when ``runtime`` and ``precision`` are empty (the coarse factor, taught by every
    run of the pair). Log factors, the sample count and the measured run time (s) they cover;
    until the factor is established, the observations its log factors are the weighted medians
    of (``early_energy``, ``early_duration``: empty once established)."""

    model: str
    gpu: str
    samples: int = 0
    energy_log: float = 0.0
    duration_log: float = 0.0
    measured_s: float = 0.0
    early_energy: Points = ()
    early_duration: Points = ()
    runtime: str = ""
    precision: str = ""

    @property
    def coarse(self) -> bool:
        """Whether this is a (model, GPU type) factor, of every runtime and precision."""
        return not self.runtime and not self.precision

    @property
    def key(self) -> Key:
        """Its key in :attr:`Recalibration.factors` (case-insensitive)."""
        return _key(self.model, self.gpu, self.runtime, self.precision)

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
    floats' range is ±inf (``_clip`` clips it to ``max_ratio`` as any large one)."""
    if measured > 0 and estimated > 0 and math.isfinite(measured) and math.isfinite(estimated):
        ratio = measured / estimated  # may overflow to inf or underflow to 0
        return math.log(ratio) if ratio > 0 else -math.inf
    return None


def _clip(log: float, config: RecalibrationConfig) -> float:
    """A log ratio clipped to ``±log(max_ratio)``."""
    bound = math.log(config.max_ratio)
    return min(bound, max(-bound, log))


def _step(current: float, new: float, weight: float, config: RecalibrationConfig) -> float:
    """An established factor ``current`` moved towards ``new`` (log factors) by ``weight``,
    ``new`` clipped to ``max_ratio`` and to ``max_step`` from ``current``."""
    step = math.log1p(config.max_step)
    new = min(current + step, max(current - step, _clip(new, config)))
    return current + weight * (new - current)


def weighted_median(points: Points) -> float:
    """The median of ``points`` (value, weight > 0; sorted by value) weighted by their weights:
    the value where the cumulative weight passes half the total (on an exact tie, the mean of
    the values either side: two equal points give their mean)."""
    half = math.fsum(w for _, w in points) / 2
    seen = 0.0
    for i, (value, weight) in enumerate(points):
        seen += weight
        if math.isclose(seen, half, rel_tol=1e-12) and i + 1 < len(points):
            return (value + points[i + 1][0]) / 2
        if seen > half:
            return value
    return points[-1][0]


def _with_point(points: Points, value: float, weight: float) -> Points:
    """``points`` with (``value``, ``weight``) added in order, the two closest in value merged
    into their weighted mean while more than :data:`EARLY_KEPT`."""
    kept = sorted((*points, (value, weight)))
    while len(kept) > EARLY_KEPT:
        i = min(range(len(kept) - 1), key=lambda j: kept[j + 1][0] - kept[j][0])
        (a, wa), (b, wb) = kept[i], kept[i + 1]
        kept[i : i + 2] = [((a * wa + b * wb) / (wa + wb), wa + wb)]
    return tuple(kept)


def _early(state: RecalibrationFactor, log: float, points: Points) -> Points:
    """The observations a factor not (yet, or no longer: a raised threshold) established keeps:
    ``points``, or, when it has none but has learned (established once), its log factor
    ``log`` weighing all its measured time."""
    if points or state.samples == 0:
        return points
    return ((log, state.measured_s or 1.0),)


def _key(model: str, gpu: str, runtime: str = "", precision: str = "") -> Key:
    names = (model, gpu, runtime, precision)
    return (names[0].strip().lower(), names[1].strip().lower(), names[2].strip().lower(),
            names[3].strip().lower())  # fmt: skip


@dataclass(frozen=True, slots=True)
class Recalibration:
    """Factors per (model, GPU type, runtime, precision) and per (model, GPU type) (keys are
    case-insensitive; :data:`Key`). Where ``runtime`` and ``precision`` are left out (or empty),
    a method means the coarse (model, GPU type) factor."""

    config: RecalibrationConfig = DEFAULT_RECALIBRATION
    factors: Mapping[Key, RecalibrationFactor] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_factors(
        cls,
        factors: Iterable[RecalibrationFactor],
        config: RecalibrationConfig = DEFAULT_RECALIBRATION,
    ) -> Recalibration:
        """Rebuild from stored factors (e.g. the ledger's rows)."""
        return cls(config, MappingProxyType({f.key: f for f in factors}))

    @property
    def pairs(self) -> int:
        """How many (model, GPU type) pairs have learned (their coarse factors)."""
        return sum(1 for f in self.factors.values() if f.coarse)

    def get(
        self, model: str, gpu: str, runtime: str = "", precision: str = ""
    ) -> RecalibrationFactor:
        """The state of exactly that key (a fresh one, factor 1, if never observed)."""
        return self.factors.get(_key(model, gpu, runtime, precision)) or RecalibrationFactor(
            model, gpu, runtime=runtime, precision=precision
        )

    def in_use(self, model: str, gpu: str, runtime: str = "", precision: str = "") -> bool:
        """Whether exactly that key's factors have enough evidence to be used: at least
        ``min_samples`` observations covering ``min_measured_s`` seconds of measured runs."""
        return self._established(self.get(model, gpu, runtime, precision))

    def _established(self, state: RecalibrationFactor) -> bool:
        return (
            state.samples >= self.config.min_samples
            and state.measured_s >= self.config.min_measured_s
        )

    def level(
        self, model: str, gpu: str, runtime: str = "", precision: str = ""
    ) -> RecalibrationFactor | None:
        """The factor an estimate of ``model`` on ``gpu`` with ``runtime`` and ``precision``
        uses: that key's once established, else (model, GPU type)'s once established, else
        None (factor 1.0)."""
        fine = self.factors.get(_key(model, gpu, runtime, precision))
        if fine is not None and self._established(fine):
            return fine
        coarse = self.factors.get(_key(model, gpu))
        return coarse if coarse is not None and self._established(coarse) else None

    def energy_factor(self, model: str, gpu: str, runtime: str = "", precision: str = "") -> float:
        """The energy factor in use (:meth:`level`; 1.0 when none is)."""
        state = self.level(model, gpu, runtime, precision)
        return 1.0 if state is None else state.energy_factor

    def duration_factor(
        self, model: str, gpu: str, runtime: str = "", precision: str = ""
    ) -> float:
        """The duration factor in use (:meth:`level`; 1.0 when none is)."""
        state = self.level(model, gpu, runtime, precision)
        return 1.0 if state is None else state.duration_factor

    def updated(self, observation: Observation) -> Recalibration:
        """A new calibration with ``observation`` folded into its (model, GPU type) factor and,
        when it names a runtime or a precision, into that key's factor too; itself when either
        ratio is unusable (a measured energy of 0 J, a NaN, ...): the energy and duration
        factors share one sample count and one measured time, so a run that teaches only one of
        them would count as evidence for the other."""
        energy = _log_ratio(observation.measured_energy_j, observation.estimated_energy_j)
        duration = _log_ratio(observation.measured_duration_s, observation.estimated_duration_s)
        if energy is None or duration is None:
            return self
        seconds = observation.measured_duration_s  # finite and > 0: its ratio is usable
        model, gpu = observation.model, observation.gpu
        factors = dict(self.factors)
        coarse = _key(model, gpu)
        named = (observation.runtime.strip(), observation.precision.strip())
        fine = (*coarse[:2], named[0].lower(), named[1].lower())
        keys = ((coarse, ("", "")), (fine, named))
        for key, (runtime, precision) in keys[: 1 if fine == coarse else 2]:
            state = factors.get(key) or RecalibrationFactor(
                model, gpu, runtime=runtime, precision=precision
            )
            factors[key] = self._folded(state, energy, duration, seconds)
        return Recalibration(self.config, MappingProxyType(factors))

    def _folded(
        self, state: RecalibrationFactor, energy: float, duration: float, seconds: float
    ) -> RecalibrationFactor:
        """``state`` with one observation's log ratios and measured ``seconds`` folded in (a
        new value built field by field: ``dataclasses.replace`` took a third of a fold's time)."""
        samples, measured_s = state.samples + 1, state.measured_s + seconds
        if self._established(state):  # each new one 1/n, >= decay
            weight = max(1.0 / samples, self.config.decay)
            return RecalibrationFactor(
                state.model, state.gpu, samples,
                _step(state.energy_log, energy, weight, self.config),
                _step(state.duration_log, duration, weight, self.config),
                measured_s, state.early_energy, state.early_duration, state.runtime,
                state.precision,
            )  # fmt: skip
        # the time-weighted median: one wild run among the first moves nothing
        energies = _with_point(_early(state, state.energy_log, state.early_energy),
                               _clip(energy, self.config), seconds)  # fmt: skip
        durations = _with_point(_early(state, state.duration_log, state.early_duration),
                                _clip(duration, self.config), seconds)  # fmt: skip
        new_state = RecalibrationFactor(
            state.model, state.gpu, samples, weighted_median(energies),
            weighted_median(durations), measured_s, energies, durations, state.runtime,
            state.precision,
        )  # fmt: skip
        if self._established(new_state):  # from now on an average: the points go
            new_state = replace(new_state, early_energy=(), early_duration=())
        return new_state

    def _factors_of(self, estimate: Estimate) -> tuple[float, float]:
        """The energy and duration factors in use for ``estimate`` (its runtime and weight
        precision, :meth:`level`)."""
        state = self.level(estimate.model, estimate.gpu, estimate.runtime,
                           estimate.workload.precision)  # fmt: skip
        return (1.0, 1.0) if state is None else (state.energy_factor, state.duration_factor)

    def apply(self, estimate: Estimate) -> Estimate:
        """``estimate`` with its energy and duration multiplied by the factors in use
        (:meth:`level` of its model, GPU type, runtime and precision)."""
        if not estimate.fits:
            return estimate
        energy, duration = self._factors_of(estimate)
        if energy == 1.0 and duration == 1.0:
            return estimate
        return replace(
            estimate,
            energy_j=estimate.energy_j * energy,
            prefill_energy_j=estimate.prefill_energy_j * energy,
            decode_energy_j=estimate.decode_energy_j * energy,
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
        energy, duration = self._factors_of(estimate)
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
