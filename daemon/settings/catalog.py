"""The ``[catalog]`` section: a site's overrides of the GPU catalog (``[catalog.gpus.NAME]``)
and of the ACT model's parameters (``[catalog.act]``), each problem at its own key's line."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from daemon.settings.sections import Section, error_at, errors_at, known_gpu
from policies.footprint.embodied import DEFAULT_ACT
from policies.footprint.gpus import DEFAULT_GPU_CATALOG, METHOD_ACT

__all__ = ["ACT_BOUNDS", "ACT_PARAMETERS", "CatalogSettings", "GpuOverride"]

# Bounds no real GPU comes near (README, "catalog.gpus"): a figure of 1e308 overflowed the
# energy or embodied grams to inf (null in `estimate --json`), a rate near 0 made a job last
# 1e300 s. The largest built-in figures: B200 1,600 mm2 (two ~800 mm2 dies; a reticle is
# ~858 mm2), 1,000 W, 8,000 GB/s, 4,500 int8 TOP/s; H200 141 GB.
MAX_DIE_AREA_MM2 = 10_000.0
MAX_MEMORY_GB = 10_000.0
MAX_POWER_W = 10_000.0
MAX_EMBODIED_KG = 10_000.0
MAX_RATE = 100_000.0  # GB/s, TFLOP/s, TOP/s
MIN_RATE = 0.1  # TFLOP/s, TOP/s, interconnect GB/s
MIN_MEMORY_BANDWIDTH_GB_S = 1.0


# The architectures the estimator knows (policies.footprint.estimator.matmul_peak_flops), in
# catalog order.
_ARCHITECTURES = tuple(dict.fromkeys(gpu.architecture for gpu in DEFAULT_GPU_CATALOG))


class GpuOverride(Section):
    """The fields of one GPU a site replaces (``[catalog.gpus.NAME]``), as
    :class:`policies.footprint.GpuSpec` names them: sizes above 0, powers and embodied carbon
    not below (a negative figure charged negative grams), rates (the interconnect's included)
    at least :data:`MIN_RATE` (memory bandwidth 1 GB/s), and none above the bounds no real GPU
    comes near (:data:`MAX_POWER_W` and the others), a
    memory type the ACT model has a carbon-per-GB figure for, an architecture the estimator
    knows (any case; stored as the catalog spells it)."""

    architecture: str | None = None
    year: int | None = Field(default=None, gt=0)
    die_area_mm2: float | None = Field(default=None, gt=0, le=MAX_DIE_AREA_MM2)
    process_node_nm: int | None = Field(default=None, gt=0)
    memory_gb: float | None = Field(default=None, gt=0, le=MAX_MEMORY_GB)
    memory_type: str | None = None
    memory_bandwidth_gb_s: float | None = Field(
        default=None, ge=MIN_MEMORY_BANDWIDTH_GB_S, le=MAX_RATE
    )
    fp16_tflops: float | None = Field(default=None, ge=MIN_RATE, le=MAX_RATE)
    fp32_tflops: float | None = Field(default=None, ge=MIN_RATE, le=MAX_RATE)
    int8_tops: float | None = Field(default=None, ge=MIN_RATE, le=MAX_RATE)
    tdp_w: float | None = Field(default=None, gt=0, le=MAX_POWER_W)
    idle_w: float | None = Field(default=None, ge=0, le=MAX_POWER_W)
    # 0 was a ZeroDivisionError: tensor parallel divides by it
    interconnect_gb_s: float | None = Field(default=None, ge=MIN_RATE, le=MAX_RATE)
    embodied_kg: float | None = Field(default=None, ge=0, le=MAX_EMBODIED_KG)
    embodied_method: str | None = None

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str | None) -> str | None:
        """The catalog's spelling of ``value`` (any case): the estimator reads the architecture
        by name (which precisions have tensor cores), so another name was silently wrong."""
        if value is None:
            return None
        known = {name.casefold(): name for name in _ARCHITECTURES}
        try:
            return known[value.strip().casefold()]
        except KeyError:
            names = ", ".join(_ARCHITECTURES)
            raise ValueError(f"unknown architecture {value!r} (known: {names})") from None

    @field_validator("memory_type")
    @classmethod
    def _known_memory(cls, value: str | None) -> str | None:
        known = DEFAULT_ACT.memory_g_per_gb
        if value is not None and value not in known:
            raise ValueError(f"unknown memory type {value!r} (known: {', '.join(known)})")
        return value

    def fields(self) -> dict[str, Any]:
        """The fields the site set, for :meth:`policies.footprint.GpuCatalog.with_overrides`."""
        return self.model_dump(exclude_none=True)


# The ACT parameters a site may replace: the scalar ones (the per-node tables stay ACT's),
# each with its (lowest, highest) value: ACT's defaults are 583 g/kWh, yield 0.875, 500 g/cm2
# and 150 g; a fab grid of 1e308 g/kWh or a yield of 1e-308 overflowed embodied grams to inf.
ACT_BOUNDS: dict[str, tuple[float, float]] = {
    "fab_intensity_g_per_kwh": (0.0, 10_000.0),
    "fab_yield": (0.01, 1.0),
    "mpa_g_per_cm2": (0.0, 100_000.0),
    "packaging_g": (0.0, 1_000_000.0),
}
ACT_PARAMETERS = tuple(ACT_BOUNDS)


class CatalogSettings(Section):
    """Site overrides of the GPU catalog.

    ``act`` replaces ACT-model parameters (``fab_intensity_g_per_kwh``, ``fab_yield``,
    ``mpa_g_per_cm2``, ``packaging_g``) for every ACT-estimated GPU; ``gpus.<NAME>`` replaces
    fields of one GPU (e.g. ``embodied_kg``, ``idle_w``, ``tdp_w``; :class:`GpuOverride`).
    """

    act: dict[str, float] = Field(default_factory=dict)
    gpus: dict[str, GpuOverride] = Field(default_factory=dict)

    @field_validator("act")
    @classmethod
    def _act_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        problems: list[tuple[tuple[int | str, ...], str, object]] = []
        for name, number in value.items():  # each at its own key's line, not [catalog.act]'s
            if name not in ACT_PARAMETERS:
                known = ", ".join(ACT_PARAMETERS)
                problems.append(((name,), f"unknown ACT parameter (known: {known})", number))
            elif name == "fab_yield" and not ACT_BOUNDS[name][0] <= number <= 1:
                low = ACT_BOUNDS[name][0]  # the die carbon is divided by the yield
                message = f"must be at least {low:g} and at most 1, got {number:g}"
                problems.append(((name,), message, number))
            elif number < 0:
                problems.append(((name,), f"must not be negative, got {number:g}", number))
            elif number > ACT_BOUNDS[name][1]:
                message = f"must be at most {ACT_BOUNDS[name][1]:g}, got {number:g}"
                problems.append(((name,), message, number))
        if problems:
            raise errors_at(problems)
        return value

    @field_validator("gpus")
    @classmethod
    def _known_gpus(cls, value: dict[str, GpuOverride]) -> dict[str, GpuOverride]:
        for name, override in value.items():
            try:
                known_gpu(name)
            except ValueError as exc:  # at its own table's line, not the first [catalog.gpus.X]'s
                raise error_at((name,), str(exc), name) from exc
            _idle_below_tdp(name, override)
            _method_with_its_figure(name, override)
        return value


def _idle_below_tdp(name: str, override: GpuOverride) -> None:
    """Raises a ValidationError at ``NAME.idle_w`` (or ``NAME.tdp_w`` when only that is set:
    the file's line of the field) when the override leaves the GPU idling above its TDP, which
    charged each idle second more than a busy one."""
    spec = DEFAULT_GPU_CATALOG.get(name)
    idle = spec.idle_w if override.idle_w is None else override.idle_w
    tdp = spec.tdp_w if override.tdp_w is None else override.tdp_w
    if idle <= tdp:
        return
    field = "idle_w" if override.idle_w is not None else "tdp_w"
    idle_note = " (the catalog's)" if override.idle_w is None else ""
    tdp_note = " (the catalog's)" if override.tdp_w is None else ""
    message = (f"idle_w {idle:g} W{idle_note} is above tdp_w {tdp:g} W{tdp_note}: a GPU idles "
               "below its full power")  # fmt: skip
    raise error_at((name, field), message, getattr(override, field))


def _method_with_its_figure(name: str, override: GpuOverride) -> None:
    """Raises a ValidationError at ``NAME.embodied_method`` when it names a method without an
    ``embodied_kg`` to go with it: the catalog's figure would carry a method it did not come
    from (the L4's ACT estimate as ``paper-table-1``). ``act-estimate`` re-estimates the GPU
    (:meth:`policies.footprint.GpuCatalog.with_overrides`); its own method changes nothing."""
    method = override.embodied_method
    if method is None or override.embodied_kg is not None:
        return
    spec = DEFAULT_GPU_CATALOG.get(name)
    if method in (METHOD_ACT, spec.embodied_method):
        return
    message = (f"{method!r} without an embodied_kg would label the {spec.name}'s "
               f"{spec.embodied_method} figure so: give embodied_kg, or \"{METHOD_ACT}\" to "
               "re-estimate it")  # fmt: skip
    raise error_at((name, "embodied_method"), message, method)
