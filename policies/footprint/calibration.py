"""Calibrated serving parameters and prediction intervals, per GPU class.

``bench/fit_energy.py`` fits the free parameters of the continuous-batching model
(:mod:`.serving`: FLOP and bandwidth utilisations, host time per step, the power curve) to the
ML.ENERGY v2 measurements (A100-40GB, H100) and writes them, with the quantiles of its
cross-validated residuals, to :mod:`._calibrated`. The v3 measurements are never used here:
they are the held-out test (``make validate``).

The fit set measured vLLM's V0 engine (2024), whose Python scheduler costs host time per step
and per running sequence; those two are fitted as the ``vllm-v0`` profile's host times and not
carried over to the ``vllm`` (V1 engine) profile, which keeps its own host cost. The GPU-side
parameters (utilisations, power curve) carry over to every continuous-batching profile.

A GPU with its own fit uses it; any other GPU (B200, L40S, ...) uses the ``pooled`` fit over
both classes, with the pooled residual quantiles. The ``hf-eager`` profile is not calibrated
(its numbers reproduce the paper's measurements); only continuous-batching profiles are.

:func:`estimate_interval` is what planners call: the point estimate and its 10th/90th
percentile energy and duration (:func:`band_for` says whose residuals). A pessimistic
latest-safe-start uses ``duration_s_p90``. It prices the precision the engine serves on the GPU
(:func:`.served.served_precision`, as ``carbond estimate`` and ``advise`` do): under vLLM a
bf16 job on a T4 or V100 is priced (and named) as fp16, and fp8 on a V100 does not fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Final

from policies.errors import InvalidWorkloadError
from policies.fast_init import fast_init
from policies.footprint._calibrated import CALIBRATIONS, FIT_ROWS
from policies.footprint.estimator import Estimate, estimate
from policies.footprint.gpus import GpuSpec
from policies.footprint.models import ModelSpec
from policies.footprint.power import PowerCurve, PowerModel, StudyPowerModel
from policies.footprint.runtimes import RuntimeProfile
from policies.footprint.served import served_precision
from policies.footprint.serving import estimate_continuous
from policies.footprint.workload import Workload

__all__ = [
    "POOLED",
    "Calibration",
    "EstimateInterval",
    "band_for",
    "calibrated",
    "calibration_for",
    "estimate_interval",
]

POOLED: Final = "pooled"


@dataclass(frozen=True, slots=True)
class Calibration:
    """Fitted parameters for one GPU class and the spread of its residuals.

    The ``*_ratio_p*`` fields are quantiles of measured / predicted over the fit set, by
    leave-one-model-out cross-validation (so they describe a model the fit has not seen); the
    pooled class adds leave-one-GPU-out residuals (a GPU the fit has not seen).
    """

    gpu_class: str
    prefill_mfu: float
    decode_mfu: float
    mbu: float
    per_step_overhead_s: float
    per_sequence_overhead_s: float
    compute_weight: float
    memory_weight: float
    active_floor: float
    energy_ratio_p10: float
    energy_ratio_p50: float
    energy_ratio_p90: float
    time_ratio_p10: float
    time_ratio_p50: float
    time_ratio_p90: float
    fit_rows: int = 0

    @property
    def power(self) -> PowerModel:
        """The fitted power curve."""
        return PowerModel(self.compute_weight, self.memory_weight, self.active_floor)

    def apply(self, runtime: RuntimeProfile) -> RuntimeProfile:
        """``runtime`` with the fitted GPU utilisations; with the fitted host times too when
        the profile is the engine the fit set measured (``fitted_host_overhead``)."""
        fitted = replace(
            runtime, prefill_mfu=self.prefill_mfu, decode_mfu=self.decode_mfu, mbu=self.mbu
        )
        if not runtime.fitted_host_overhead:
            return fitted
        return replace(
            fitted,
            per_step_overhead_s=self.per_step_overhead_s,
            per_sequence_overhead_s=self.per_sequence_overhead_s,
        )


_BY_CLASS: Final = {
    name: Calibration(name, fit_rows=FIT_ROWS.get(name, 0), **fields)
    for name, fields in CALIBRATIONS.items()
}


def calibration_for(gpu: GpuSpec) -> Calibration:
    """The calibration of ``gpu``'s class, or the pooled one for a GPU without its own fit."""
    return _BY_CLASS.get(gpu.name, _BY_CLASS[POOLED])


def calibrated(runtime: RuntimeProfile, gpu: GpuSpec) -> tuple[RuntimeProfile, PowerCurve]:
    """``runtime`` and a power model as calibrated for ``gpu``.

    Runtimes without continuous batching (``hf-eager``) are returned unchanged, with the
    default power model. A runtime whose ``power_model`` is ``"study"`` keeps the calibrated
    times but draws the study's power curve (:class:`StudyPowerModel`).
    """
    # Asked again for each job not yet estimated (estimate_interval), always of the catalog's
    # same runtime and GPU objects: kept by identity, checked on a hit, as estimate_interval's
    # answers are (two replace() and a power model were ~3 % of a run-now replay).
    entry = _calibrated.get((id(runtime), id(gpu)))
    if entry is not None and entry[0] is runtime and entry[1] is gpu:
        return entry[2]
    study = runtime.power_model == "study"
    if not runtime.continuous_batching:
        answer: tuple[RuntimeProfile, PowerCurve] = (
            runtime,
            StudyPowerModel() if study else PowerModel(),
        )
    else:
        cal = calibration_for(gpu)
        answer = cal.apply(runtime), StudyPowerModel() if study else cal.power
    if len(_calibrated) >= _CALIBRATED_KEPT:
        _calibrated.clear()
    _calibrated[(id(runtime), id(gpu))] = (runtime, gpu, answer)
    return answer


_CALIBRATED_KEPT: Final = 256
_calibrated: dict[
    tuple[int, int], tuple[RuntimeProfile, GpuSpec, tuple[RuntimeProfile, PowerCurve]]
] = {}  # a memo of a pure function of two frozen values


def band_for(runtime: RuntimeProfile, gpu: GpuSpec) -> Calibration:
    """Whose residual quantiles describe a prediction for ``runtime`` on ``gpu``.

    The GPU class's own (leave-one-model-out) band only for the engine its fit measured
    (``fitted_host_overhead``: ``vllm-v0``). Any other engine - ``vllm`` (V1), or an uncalibrated
    runtime - is a transfer those residuals never saw, and gets the wider pooled band, which
    includes leave-one-GPU-out transfer. (On the v3 held-out set the class band covered 51 % of
    H100 measurements, the pooled band 97 %; see docs/accuracy.md.)
    """
    if runtime.continuous_batching and runtime.fitted_host_overhead:
        return calibration_for(gpu)
    return _BY_CLASS[POOLED]


@fast_init
@dataclass(frozen=True, slots=True)
class EstimateInterval:
    """A point estimate with its 10th-90th percentile band.

    ``gpu_class`` names the fit behind the point estimate (``"uncalibrated"`` for runtimes that
    carbond does not calibrate); ``band`` the residual quantiles that scale it into
    ``energy_j_p10/p90`` and ``duration_s_p10/p90`` (:func:`band_for`).
    """

    estimate: Estimate
    gpu_class: str
    band: str
    energy_j_p10: float
    energy_j_p90: float
    duration_s_p10: float
    duration_s_p90: float

    @property
    def energy_j(self) -> float:
        """The point estimate of energy, joules."""
        return self.estimate.energy_j

    @property
    def duration_s(self) -> float:
        """The point estimate of duration, seconds."""
        return self.estimate.duration_s


def estimate_interval(
    model: ModelSpec, gpu: GpuSpec, runtime: RuntimeProfile, workload: Workload
) -> EstimateInterval:
    """Predict ``workload`` on ``gpu`` with calibrated parameters and a 10-90 % interval.

    Continuous-batching runtimes (vLLM) use :func:`.serving.estimate_continuous` with the
    calibration of ``gpu``'s class; others use :func:`.estimator.estimate` unchanged. The
    workload is priced at the precision ``runtime`` serves on ``gpu``
    (:func:`.served.served_precision`): the estimate's workload names it (vLLM's bf16 on a T4
    is fp16), and a precision it cannot serve there (fp8 on a V100) does not fit (``fits``
    False, ``inf`` time and energy, ``reason`` saying why), as a model too big does not.

    A pure function of its four frozen arguments and the module's fitted constants, so the
    answers are kept (:data:`_ESTIMATES_KEPT` of them): planners ask it for every waiting job
    on every GPU type each round, and jobs of one model and workload shape repeat. Factors
    learned online (:class:`.recalibration.Recalibration`) are applied by the caller, after.

    Raises:
        InvalidWorkloadError: a workload field is out of range (never kept).
    """
    # The catalog's model, GPU and runtime are the same objects job after job: keyed by
    # identity (hashing their dozens of fields was most of a kept answer's cost), checked on
    # a hit (the entry holds them, so their ids cannot be reused while it is kept).
    key = (id(model), id(gpu), id(runtime), workload)
    entry = _kept.get(key)
    if entry is not None and entry[0] is model and entry[1] is gpu and entry[2] is runtime:
        return entry[3]
    band = _interval(model, gpu, runtime, workload)
    if len(_kept) >= _ESTIMATES_KEPT:
        _kept.clear()
    _kept[key] = (model, gpu, runtime, band)
    return band


_ESTIMATES_KEPT: Final = 8192
_Kept = tuple[ModelSpec, GpuSpec, RuntimeProfile, EstimateInterval]
_kept: dict[tuple[int, int, int, Workload], _Kept] = {}  # a memo of a pure function


def _interval(
    model: ModelSpec, gpu: GpuSpec, runtime: RuntimeProfile, workload: Workload
) -> EstimateInterval:
    try:
        served = served_precision(gpu, runtime, workload.precision).precision
    except InvalidWorkloadError as exc:  # not servable on this GPU at all: it does not fit
        return _unserved(_priced(model, gpu, runtime, workload), str(exc))
    if served != workload.precision:
        workload = replace(workload, precision=served)
    return _priced(model, gpu, runtime, workload)


def _unserved(band: EstimateInterval, reason: str) -> EstimateInterval:
    """``band`` as a workload that does not fit, for ``reason`` (its memory figures kept)."""
    inf = math.inf
    point = replace(band.estimate, fits=False, reason=reason, duration_s=inf, energy_j=inf,
                    prefill_s=inf, decode_s=inf, batch_latency_s=inf, prefill_energy_j=inf,
                    decode_energy_j=inf, batch_in_flight=0)  # fmt: skip
    return replace(band, estimate=point, energy_j_p10=inf, energy_j_p90=inf,
                   duration_s_p10=inf, duration_s_p90=inf)  # fmt: skip


def _priced(
    model: ModelSpec, gpu: GpuSpec, runtime: RuntimeProfile, workload: Workload
) -> EstimateInterval:
    band = band_for(runtime, gpu)
    if runtime.continuous_batching:
        profile, power = calibrated(runtime, gpu)
        point = estimate_continuous(model, gpu, profile, workload, power)
        label = calibration_for(gpu).gpu_class
    else:
        point = estimate(model, gpu, runtime, workload, power=calibrated(runtime, gpu)[1])
        label = "uncalibrated"
    cal = band
    return EstimateInterval(
        estimate=point,
        gpu_class=label,
        band=band.gpu_class,
        energy_j_p10=point.energy_j * cal.energy_ratio_p10,
        energy_j_p90=point.energy_j * cal.energy_ratio_p90,
        duration_s_p10=point.duration_s * cal.time_ratio_p10,
        duration_s_p90=point.duration_s * cal.time_ratio_p90,
    )
