"""The HotCarbon'24 paper's setup ("Towards Sustainable Large Language Model Serving"), as data,
and its characterisation computed with carbond's own estimator and accounting: per prompt
(Figures 1 and 4) and per token of each phase, prefill and decode (Figures 2, 3, 5 and 6).

Precision hypothesis: Hugging Face ``from_pretrained`` loads weights in fp32 unless told
otherwise, so the 1B and 3B runs are taken at fp32. The 7B model cannot have run in fp32 on the
T4 at all (27 GB of weights on a 16 GB card) although the paper reports T4 latencies for it, so
the 7B runs are taken at fp16. ``tests/policies/footprint/test_paper.py`` checks that this
setup, and not an all-fp16 one, reproduces the paper's energy ordering at batch 64.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from policies.footprint.accounting import DEFAULT_LIFETIME_YEARS, CarbonFootprint, footprint
from policies.footprint.estimator import Estimate, estimate
from policies.footprint.gpus import DEFAULT_GPU_CATALOG, GpuCatalog, GpuSpec
from policies.footprint.models import DEFAULT_MODEL_CATALOG, ModelCatalog
from policies.footprint.runtimes import get_runtime
from policies.footprint.workload import Workload

__all__ = [
    "PAPER_BATCH_SIZES",
    "PAPER_GPUS",
    "PAPER_INPUT_TOKENS",
    "PAPER_MODELS",
    "PAPER_OUTPUT_TOKENS",
    "PAPER_PHASE_MODEL",
    "PAPER_PHASE_ZONE",
    "PAPER_PRECISION",
    "PAPER_RUNTIME",
    "PAPER_ZONES",
    "PHASES",
    "PaperCell",
    "PhaseCell",
    "characterise",
    "phase_cells",
]

PAPER_GPUS: Final = ("T4", "RTX6000-Ada")
PAPER_MODELS: Final = ("llama-1b", "llama-3b", "llama-7b")
PAPER_PRECISION: Final = MappingProxyType(
    {"llama-1b": "fp32", "llama-3b": "fp32", "llama-7b": "fp16"}
)
PAPER_BATCH_SIZES: Final = (1, 2, 4, 8, 16, 32, 64)
PAPER_OUTPUT_TOKENS: Final = 150
# The paper does not state prompt lengths; Alpaca instructions with the prompt template are short.
PAPER_INPUT_TOKENS: Final = 128
PAPER_RUNTIME: Final = "hf-eager"
# Table 2: 2023 averages, gCO2e/kWh.
PAPER_ZONES: Final = MappingProxyType({"CA-QC": 31.0, "US-CAL-CISO": 262.0, "US-NW-PACE": 647.0})
# Section 2.3 and 3.3: the phases of the 1B model (the T4 runs out of memory with larger ones).
PAPER_PHASE_MODEL: Final = "llama-1b"
# Section 3.3's text: "We use the QC's CI value" (Figures 5 and 6's captions say CISO; the
# text's 14.0 % energy gap shrinking to 7.3 % in carbon needs QC's large embodied share).
PAPER_PHASE_ZONE: Final = "CA-QC"
PHASES: Final = ("prefill", "decode")


@dataclass(frozen=True, slots=True)
class PaperCell:
    """One (model, GPU, batch size, zone) cell, per prompt (request)."""

    model: str
    gpu: str
    batch_size: int
    zone: str
    intensity_g_per_kwh: float
    estimate: Estimate
    per_prompt: CarbonFootprint | None

    @property
    def fits(self) -> bool:
        """False for the paper's OOM cells."""
        return self.estimate.fits

    @property
    def precision(self) -> str:
        """Weight precision the cell was estimated at (``fp32``, ``fp16``, ...)."""
        return self.estimate.workload.precision

    @property
    def latency_s(self) -> float:
        """Time to serve one prompt (its whole batch)."""
        return self.estimate.batch_latency_s

    @property
    def energy_per_prompt_j(self) -> float:
        """Energy per prompt: the batch's energy shared by its prompts."""
        return self.estimate.energy_per_request_j


def characterise(
    *,
    models: tuple[str, ...] = PAPER_MODELS,
    gpus: tuple[str, ...] = PAPER_GPUS,
    batch_sizes: tuple[int, ...] = PAPER_BATCH_SIZES,
    zones: tuple[str, ...] = tuple(PAPER_ZONES),
    precision: str | None = None,
    lifetime_years: float = DEFAULT_LIFETIME_YEARS,
    gpu_catalog: GpuCatalog = DEFAULT_GPU_CATALOG,
    model_catalog: ModelCatalog = DEFAULT_MODEL_CATALOG,
) -> Iterator[PaperCell]:
    """Every cell of the paper's characterisation (Figures 1 and 4), in the paper's setup.

    ``precision`` overrides :data:`PAPER_PRECISION` for every model (to test the hypothesis).
    """
    runtime = get_runtime(PAPER_RUNTIME)
    for model_name in models:
        model = model_catalog.get(model_name)
        prec = precision or PAPER_PRECISION.get(model_name, "fp16")
        for gpu_name in gpus:
            gpu = gpu_catalog.get(gpu_name)
            for batch in batch_sizes:
                work = Workload(batch, PAPER_INPUT_TOKENS, PAPER_OUTPUT_TOKENS, precision=prec)
                est = estimate(model, gpu, runtime, work)
                for zone in zones:
                    intensity = PAPER_ZONES[zone]
                    per_prompt = None
                    if est.fits:
                        job = footprint(est.energy_j, est.duration_s, intensity, gpu.embodied_g,
                                        lifetime_years=lifetime_years)  # fmt: skip
                        per_prompt = job.scaled(1.0 / work.request_count)
                    yield PaperCell(model_name, gpu.name, batch, zone, intensity, est, per_prompt)


@dataclass(frozen=True, slots=True)
class PhaseCell:
    """One phase of one (model, GPU, batch size) cell in one zone, per token.

    The prefill's tokens are the batch's prompt tokens (``batch * input_tokens``, processed in
    one pass that also yields each request's first token); the decode's are the tokens it
    generates, ``batch * (output_tokens - 1)``. ``duration_s`` and ``energy_j`` are the whole
    batch's for this phase; ``per_token`` is None when the batch does not fit.
    """

    model: str
    gpu: str
    batch_size: int
    phase: str
    zone: str
    intensity_g_per_kwh: float
    fits: bool
    tokens: int
    duration_s: float
    energy_j: float
    per_token: CarbonFootprint | None

    @property
    def throughput_tokens_per_s(self) -> float:
        """Tokens the phase handles per second (0 for a phase of no tokens)."""
        return self.tokens / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def energy_per_token_j(self) -> float:
        """Joules per token of this phase."""
        return self.energy_j / self.tokens if self.tokens else 0.0


def phase_cells(
    cells: Iterable[PaperCell],
    *,
    model: str = PAPER_PHASE_MODEL,
    zone: str = PAPER_PHASE_ZONE,
    lifetime_years: float = DEFAULT_LIFETIME_YEARS,
    gpu_catalog: GpuCatalog = DEFAULT_GPU_CATALOG,
) -> list[PhaseCell]:
    """The prefill and decode cells of ``model`` in ``zone`` (Figures 2, 3, 5 and 6), from the
    characterisation's ``cells`` (each a job of one batch), in their order, prefill first.

    Embodied grams are charged for each phase's own time (Eq. 3), operational grams for its
    own energy (Eq. 2), so a phase's grams per token add the two as Figures 5 and 6 stack them.
    """
    out: list[PhaseCell] = []
    for cell in cells:
        if (cell.model, cell.zone) != (model, zone):
            continue
        gpu = gpu_catalog.get(cell.gpu)
        out.extend(_phases(cell, gpu, lifetime_years))
    return sorted(out, key=lambda c: PHASES.index(c.phase))  # stable: cells keep their order


def _phases(cell: PaperCell, gpu: GpuSpec, lifetime_years: float) -> Iterator[PhaseCell]:
    est = cell.estimate
    work = est.workload
    for phase, tokens, duration_s, energy_j in (
        ("prefill", work.request_count * work.input_tokens, est.prefill_s, est.prefill_energy_j),
        ("decode", work.request_count * (work.output_tokens - 1), est.decode_s,
         est.decode_energy_j),
    ):  # fmt: skip
        per_token = None
        if est.fits and tokens:
            grams = footprint(energy_j, duration_s, cell.intensity_g_per_kwh, gpu.embodied_g,
                              lifetime_years=lifetime_years, gpus=est.gpus)  # fmt: skip
            per_token = grams.scaled(1.0 / tokens)
        yield PhaseCell(cell.model, cell.gpu, cell.batch_size, phase, cell.zone,
                        cell.intensity_g_per_kwh, est.fits, tokens, duration_s, energy_j,
                        per_token)  # fmt: skip
