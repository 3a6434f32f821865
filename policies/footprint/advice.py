"""Deployment advice: the lowest-carbon way to serve a model within a latency bound.

:func:`advise` sweeps batch size (requests in flight), weight precision, GPU type and grid zone;
for each GPU and precision it takes the fewest tensor-parallel GPUs (1, 2, 4, 8; only those the
model's attention heads split over) that hold the weights, at the batch whose KV cache fits
there (the engine queues the other requests), and the fewest whose KV cache admits the whole
batch. Every candidate is scored per 1000 output tokens (SCI functional unit):
operational grams ``E * CI * PUE`` plus the embodied grams of the GPU time (:mod:`.accounting`),
with energy and step time from the calibrated continuous-batching model (:mod:`.serving`,
:mod:`.calibration`). Candidates whose per-request latency (``n_out`` steps) exceeds the bound
are dropped.

The contribution of each factor is measured one at a time from the recommendation: the same
configuration with batch 1 (batching), with 16-bit weights (quantisation), in the
highest-intensity zone (grid), and the highest-carbon other GPU type at its own best batch and
precision (hardware). Each says how many grams per 1k tokens the recommendation saves by its
choice of that factor.

Weight-only int8/int4 quantisation shrinks the weights read per step and the memory they take;
compute still runs at the 16-bit rate. Its effect on output quality is not modelled: the advice
says so.

Each precision is swept as vLLM serves it on the GPU (:func:`.served.served_precision`): bf16
on Turing and Volta as fp16; fp8 not on Volta (said in :attr:`Advice.unserved`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from policies.errors import InvalidWorkloadError
from policies.footprint.accounting import embodied_g, operational_g
from policies.footprint.calibration import band_for, calibrated
from policies.footprint.gpus import GpuSpec
from policies.footprint.models import ModelSpec
from policies.footprint.runtimes import RuntimeProfile
from policies.footprint.served import served_precision
from policies.footprint.serving import admitted_batch, steady_state
from policies.footprint.workload import Workload

__all__ = [
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_PRECISIONS",
    "Advice",
    "Candidate",
    "FactorEffect",
    "advise",
]

DEFAULT_BATCH_SIZES: Final = (1, 4, 16, 32, 64, 128, 256, 512)
DEFAULT_PRECISIONS: Final = ("bf16", "int8", "int4")
_TP_OPTIONS: Final = (1, 2, 4, 8)
_SIXTEEN_BIT: Final = frozenset({"bf16", "fp16"})


@dataclass(frozen=True, slots=True)
class Candidate:
    """One configuration and its footprint per 1000 output tokens."""

    gpu: str
    gpus: int
    precision: str
    batch_size: int
    zone: str
    intensity_g_per_kwh: float
    latency_s: float
    energy_per_1k_tokens_j: float
    operational_per_1k_tokens_g: float
    embodied_per_1k_tokens_g: float
    total_per_1k_tokens_g_p10: float
    total_per_1k_tokens_g_p90: float

    @property
    def total_per_1k_tokens_g(self) -> float:
        """Operational + embodied grams per 1000 output tokens."""
        return self.operational_per_1k_tokens_g + self.embodied_per_1k_tokens_g


@dataclass(frozen=True, slots=True)
class FactorEffect:
    """What the recommendation saves by its choice of one factor (others held fixed)."""

    factor: str  # batching, quantisation, hardware, grid
    alternative: str  # the configuration without this choice, e.g. "batch 1"
    chosen: str
    alternative_per_1k_tokens_g: float
    saving_per_1k_tokens_g: float

    @property
    def saving_pct(self) -> float:
        """Saving as a percentage of the alternative's grams."""
        if self.alternative_per_1k_tokens_g <= 0:
            return 0.0
        return 100.0 * self.saving_per_1k_tokens_g / self.alternative_per_1k_tokens_g


@dataclass(frozen=True, slots=True)
class Advice:
    """The recommendation, the runners-up (best first) and the factor contributions;
    ``unserved`` names the precisions asked that vLLM cannot serve on a GPU ("fp8 on V100"),
    left out of the sweep."""

    best: Candidate | None
    runners_up: tuple[Candidate, ...]
    factors: tuple[FactorEffect, ...]
    candidates: int
    rejected_latency: int
    rejected_memory: int
    reason: str
    unserved: tuple[str, ...] = ()


def _fits(
    model: ModelSpec, gpu: GpuSpec, runtime: RuntimeProfile, workload: Workload
) -> list[Workload]:
    """How ``workload``'s batch can run on ``gpu``: the fewest tensor-parallel GPUs (of those
    the model's heads split over, :meth:`.ModelSpec.splits_over`) that hold the weights and at
    least one request, at the batch the engine admits there
    (:func:`.serving.admitted_batch`: vLLM queues the rest, as the validation runs measured);
    and, when that caps the batch, also the fewest GPUs whose KV cache admits the whole batch
    (by the same rule, as `carbond estimate` runs it). Empty when nothing fits."""
    options = [tp for tp in _TP_OPTIONS if model.splits_over(tp)]
    out: list[Workload] = []
    for tp in options:
        candidate = replace(workload, tensor_parallel=tp)
        admitted = admitted_batch(model, gpu, runtime, candidate)
        if admitted >= 1:
            out.append(replace(candidate, batch_size=admitted))
            break
    if out and out[0].batch_size < workload.batch_size:
        for tp in options:
            candidate = replace(workload, tensor_parallel=tp)
            if admitted_batch(model, gpu, runtime, candidate) >= workload.batch_size:
                out.append(candidate)
                break
    return out


def _score(
    model: ModelSpec,
    gpu: GpuSpec,
    runtime: RuntimeProfile,
    workload: Workload,
    zones: Mapping[str, float],
    pue: Mapping[str, float],
    lifetime_years: float,
) -> list[Candidate]:
    profile, power = calibrated(runtime, gpu)
    state = steady_state(model, gpu, profile, workload, power)
    cal = band_for(runtime, gpu)  # the band `carbond estimate` gives the same configuration
    energy_1k = state.energy_per_output_token_j * 1000.0
    seconds_1k = state.step_s / workload.batch_size * 1000.0
    emb = float(embodied_g(seconds_1k, gpu.embodied_g, lifetime_years, workload.tensor_parallel))
    out = []
    for zone, intensity in zones.items():
        op = float(operational_g(energy_1k, intensity, pue[zone]))
        out.append(
            Candidate(gpu.name, workload.tensor_parallel, workload.precision,
                      workload.batch_size, zone, intensity, workload.output_tokens * state.step_s,
                      energy_1k, op, emb, op * cal.energy_ratio_p10 + emb * cal.time_ratio_p10,
                      op * cal.energy_ratio_p90 + emb * cal.time_ratio_p90)
        )  # fmt: skip
    return out


def _served(
    gpu: GpuSpec, runtime: RuntimeProfile, precisions: Sequence[str], unserved: list[str]
) -> list[str]:
    """The precisions asked as ``runtime`` serves them on ``gpu``, each once (bf16 and fp16
    are one on a T4); those it cannot serve are appended to ``unserved``."""
    out: dict[str, None] = {}
    for asked in precisions:
        try:
            out[served_precision(gpu, runtime, asked).precision] = None
        except InvalidWorkloadError as exc:
            if exc.field != "precision":
                raise
            unserved.append(f"{asked.lower()} on {gpu.name}")
    return list(out)


def _describe(c: Candidate, factor: str, best: Candidate | None = None) -> str:
    """``c``'s choice of ``factor``; a quantisation alternative on another GPU count or batch
    than ``best`` says which (16-bit weights may need more GPUs)."""
    if (
        factor == "quantisation"
        and best is not None
        and (c.gpus, c.batch_size) != (best.gpus, best.batch_size)
    ):
        return f"{c.precision} (x{c.gpus}, batch {c.batch_size})"
    return {
        "batching": f"batch {c.batch_size}",
        "quantisation": c.precision,
        "hardware": f"{c.gpu} x{c.gpus}",
        "grid": f"{c.zone} ({c.intensity_g_per_kwh:g} g/kWh)",
    }[factor]


def _best_per_gpu(pool: Sequence[Candidate]) -> list[Candidate]:
    best: dict[str, Candidate] = {}
    for c in pool:
        if c.gpu not in best or c.total_per_1k_tokens_g < best[c.gpu].total_per_1k_tokens_g:
            best[c.gpu] = c
    return list(best.values())


def _factors(best: Candidate, pool: Sequence[Candidate]) -> tuple[FactorEffect, ...]:
    """One factor at a time: the worst alternative that differs from ``best`` in that factor.

    Batching, quantisation and grid hold everything else fixed. Hardware compares with each
    other GPU type's own best configuration in the same zone (another GPU may need another
    batch or precision to fit or meet the bound), and takes the worst of those. Quantisation
    without a 16-bit candidate at the same batch (16-bit weights need more GPUs, whose
    admitted batch differs) compares with the best 16-bit one on the same GPU type and zone.
    """

    def same(c: Candidate, *keys: str) -> bool:
        return all(getattr(c, k) == getattr(best, k) for k in keys)

    picks: dict[str, list[Candidate]] = {
        "batching": [c for c in pool if same(c, "gpu", "precision", "zone") and c.batch_size == 1],
        "quantisation": [
            c for c in pool
            if same(c, "gpu", "batch_size", "zone") and c.precision in _SIXTEEN_BIT
        ],
        "hardware": _best_per_gpu([c for c in pool if c.zone == best.zone and c.gpu != best.gpu]),
        "grid": [
            c for c in pool
            if same(c, "gpu", "precision", "batch_size") and c.zone != best.zone
        ],
    }  # fmt: skip
    if not picks["quantisation"]:
        picks["quantisation"] = _best_per_gpu(
            [c for c in pool if same(c, "gpu", "zone") and c.precision in _SIXTEEN_BIT]
        )
    effects = []
    for factor, options in picks.items():
        if not options or (factor == "quantisation" and best.precision in _SIXTEEN_BIT):
            continue
        if factor == "batching" and best.batch_size == 1:
            continue
        worst = max(options, key=lambda c: c.total_per_1k_tokens_g)
        if factor == "grid" and worst.total_per_1k_tokens_g <= best.total_per_1k_tokens_g:
            continue  # every other zone ties (same intensity and PUE): the zone saves nothing
        effects.append(
            FactorEffect(factor, _describe(worst, factor, best), _describe(best, factor),
                         worst.total_per_1k_tokens_g,
                         worst.total_per_1k_tokens_g - best.total_per_1k_tokens_g)
        )  # fmt: skip
    return tuple(sorted(effects, key=lambda e: e.saving_per_1k_tokens_g, reverse=True))


def _why_none(
    pool: Sequence[Candidate],
    rejected_memory: int,
    unserved: Sequence[str],
    max_latency_s: float | None,
) -> str:
    """Why no configuration is recommended."""
    if pool:
        return (
            f"no configuration meets the latency bound of {max_latency_s:g} s "
            f"(fastest: {min(c.latency_s for c in pool):.2f} s)"
        )
    if rejected_memory or not unserved:
        return "no configuration fits in memory"
    return f"vLLM serves none of the precisions asked there ({', '.join(unserved)})"


def advise(
    model: ModelSpec,
    gpus: Sequence[GpuSpec],
    zones: Mapping[str, float],
    runtime: RuntimeProfile,
    *,
    input_tokens: int = 250,
    output_tokens: int = 250,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    precisions: Sequence[str] = DEFAULT_PRECISIONS,
    max_latency_s: float | None = None,
    pue: float | Mapping[str, float] = 1.0,
    lifetime_years: float = 5.0,
    runners_up: int = 5,
) -> Advice:
    """Sweep and recommend; ``zones`` maps zone name to intensity in gCO2e/kWh, ``pue`` is
    one PUE for every zone or each zone's (a zone it does not name: 1.0).

    Raises:
        InvalidWorkloadError: no GPUs or zones, a bad precision or token count, or a
            non-positive latency bound.
    """
    if not gpus or not zones:
        raise InvalidWorkloadError("advice needs at least one GPU and one zone")
    if max_latency_s is not None and not max_latency_s > 0:
        raise InvalidWorkloadError(
            f"max_latency_s must be positive, got {max_latency_s}",
            field="max_latency_s",
            value=str(max_latency_s),
            allowed="a positive number of seconds",
        )
    pues = {zone: pue if isinstance(pue, float | int) else pue.get(zone, 1.0) for zone in zones}
    pool: list[Candidate] = []
    scored: set[tuple[str, str, int, int]] = set()
    rejected_memory = 0
    unserved: list[str] = []
    unfit: dict[tuple[str, str], bool] = {}  # (GPU, precision): no batch fits on 8 GPUs
    for gpu in {gpu.name: gpu for gpu in gpus}.values():  # T4 and tesla-t4 are one GPU type
        for precision in _served(gpu, runtime, precisions, unserved):
            for batch in batch_sizes:
                wl = Workload(batch, input_tokens, output_tokens, None, precision, 1)
                wl.validate()
                fitted = _fits(model, gpu, runtime, wl)
                unfit[gpu.name, precision] = unfit.get((gpu.name, precision), True) and not fitted
                if not fitted:
                    rejected_memory += len(zones)
                for fit in fitted:
                    key = (gpu.name, fit.precision, fit.tensor_parallel, fit.batch_size)
                    if key not in scored:  # a larger batch capped to one already scored
                        scored.add(key)
                        pool += _score(model, gpu, runtime, fit, zones, pues, lifetime_years)
    feasible = [c for c in pool if max_latency_s is None or c.latency_s <= max_latency_s]
    rejected_latency = len(pool) - len(feasible)
    feasible.sort(key=lambda c: (c.total_per_1k_tokens_g, c.latency_s))
    if not feasible:
        reason = _why_none(pool, rejected_memory, unserved, max_latency_s)
        return Advice(None, (), (), len(pool), rejected_latency, rejected_memory, reason,
                      tuple(unserved))  # fmt: skip
    best = feasible[0]
    reason = (
        f"{best.gpu} x{best.gpus}, {best.precision}, batch {best.batch_size}, {best.zone}: "
        f"{best.total_per_1k_tokens_g:.3g} g per 1k output tokens, "
        f"{best.latency_s:.2f} s per request"
    )
    if best.precision not in _SIXTEEN_BIT:
        reason += f"; check {best.precision} output quality (not modelled)"
        if any(unfit.get((best.gpu, p), False) for p in _SIXTEEN_BIT):
            reason += (
                f"; 16-bit weights fit on no {best.gpu} count up to 8: {best.precision} is needed"
            )
    return Advice(best, tuple(feasible[1 : 1 + runners_up]), _factors(best, feasible),
                  len(pool), rejected_latency, rejected_memory, reason,
                  tuple(unserved))  # fmt: skip
