"""The ``[catalog]`` section: a site's overrides of the GPU catalog (``[catalog.gpus.NAME]``),
the GPU types it adds (a ``[catalog.gpus.NAME]`` the built-in catalog lacks, every field given)
and the ACT model's parameters (``[catalog.act]``), each problem at its own key's line."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import Field, field_validator

from daemon.settings.sections import Section, error_at, errors_at
from policies.errors import UnknownGpuError
from policies.footprint.embodied import DEFAULT_ACT
from policies.footprint.gpus import (
    DEFAULT_GPU_CATALOG,
    GPU_SPEC_FIELDS,
    METHOD_ACT,
    GpuCatalog,
    GpuSpec,
    gpu_key,
)

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
    # the exact board names NVML reports ("NVIDIA H100 NVL"): discovery and the declared-GPU
    # check match them to this GPU
    nvml_names: tuple[str, ...] | None = None

    @field_validator("nvml_names")
    @classmethod
    def _named(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and any(not name.strip() for name in value):
            raise ValueError("an NVML name must not be empty (nvidia-smi -L shows them)")
        return value

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
    fields of one built-in GPU (e.g. ``embodied_kg``, ``idle_w``, ``tdp_w``;
    :class:`GpuOverride`), or, for a name the built-in catalog lacks, defines a new type from
    every field (:data:`policies.footprint.gpus.GPU_SPEC_FIELDS` and its embodied carbon).
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
            spec = _built_in(name)
            if spec is None:  # at its own table's line, not the first [catalog.gpus.X]'s
                _complete(name, override)
            _idle_below_tdp(name, override, spec)
            if spec is not None:
                _method_with_its_figure(spec, name, override)
        _names_unique(value)
        return value

    def gpu_catalog(self) -> GpuCatalog:
        """The built-in catalog under these ACT parameters, with the overrides applied and
        the new types added (each checked with the settings).

        Raises:
            ValueError / TypeError / LookupError: the catalog cannot be built from them.
        """
        params = replace(DEFAULT_ACT, **self.act)  # type: ignore[arg-type]  # only scalar fields (ACT_PARAMETERS), checked above
        catalog = GpuCatalog.default(params)
        changed = {n: g.fields() for n, g in self.gpus.items() if _built_in(n) is not None}
        new = {n: g.fields() for n, g in self.gpus.items() if _built_in(n) is None}
        return catalog.with_overrides(changed).with_new_types(new)


def _built_in(name: str) -> GpuSpec | None:
    """The built-in GPU called ``name`` (any of its names), None for a new type."""
    try:
        return DEFAULT_GPU_CATALOG.get(name)
    except UnknownGpuError:
        return None


def _complete(name: str, override: GpuOverride) -> None:
    """Raises a ValidationError at the ``[catalog.gpus.NAME]`` table naming the fields a new
    type still needs: the built-in catalog has none of them to fall back on."""
    given = override.fields()
    needed = [field for field in GPU_SPEC_FIELDS if field not in given]
    method = override.embodied_method
    if method is None:
        needed.append(f'embodied_method (with embodied_kg, or "{METHOD_ACT}" alone)')
    elif method != METHOD_ACT and override.embodied_kg is None:
        needed.append(f'embodied_kg (or embodied_method = "{METHOD_ACT}")')
    if needed:
        message = (f"{name!r} is no built-in GPU (known: {', '.join(DEFAULT_GPU_CATALOG.names())}"
                   f"); to define it as a new type give {', '.join(needed)}")  # fmt: skip
        raise error_at((name,), message, name)


def _names_unique(value: dict[str, GpuOverride]) -> None:
    """Raises a ValidationError at ``NAME`` or ``NAME.nvml_names`` when a new type's name, or
    an NVML name, is already another GPU's (built-in or of this section): which one a board
    of that name is would depend on the order of the tables."""
    owners: dict[str, str] = {}
    for name, override in value.items():
        spec = _built_in(name)
        owner = name if spec is None else spec.name
        if spec is None:
            if (other := owners.get(gpu_key(name))) is not None:
                raise error_at((name,), f"the same GPU name as {other}", name)
            owners[gpu_key(name)] = owner
        for nvml in override.nvml_names or ():
            taken = _built_in(nvml)
            other = taken.name if taken is not None else owners.get(gpu_key(nvml))
            if other is not None and other != owner:
                message = f"NVML name {nvml!r} is already {other}'s"
                raise error_at((name, "nvml_names"), message, nvml)
            owners[gpu_key(nvml)] = owner


def _idle_below_tdp(name: str, override: GpuOverride, spec: GpuSpec | None) -> None:
    """Raises a ValidationError at ``NAME.idle_w`` (or ``NAME.tdp_w`` when only that is set:
    the file's line of the field) when the override leaves the GPU idling above its TDP, which
    charged each idle second more than a busy one. ``spec``: the built-in GPU (None: a new
    type, whose two fields :func:`_complete` checked were given)."""
    idle = override.idle_w if spec is None or override.idle_w is not None else spec.idle_w
    tdp = override.tdp_w if spec is None or override.tdp_w is not None else spec.tdp_w
    if idle is None or tdp is None or idle <= tdp:
        return
    field = "idle_w" if override.idle_w is not None else "tdp_w"
    idle_note = " (the catalog's)" if override.idle_w is None else ""
    tdp_note = " (the catalog's)" if override.tdp_w is None else ""
    message = (f"idle_w {idle:g} W{idle_note} is above tdp_w {tdp:g} W{tdp_note}: a GPU idles "
               "below its full power")  # fmt: skip
    raise error_at((name, field), message, getattr(override, field))


def _method_with_its_figure(spec: GpuSpec, name: str, override: GpuOverride) -> None:
    """Raises a ValidationError at ``NAME.embodied_method`` when it names a method without an
    ``embodied_kg`` to go with it: the catalog's figure would carry a method it did not come
    from (the L4's ACT estimate as ``paper-table-1``). ``act-estimate`` re-estimates the GPU
    (:meth:`policies.footprint.GpuCatalog.with_overrides`); its own method changes nothing."""
    method = override.embodied_method
    if method is None or override.embodied_kg is not None:
        return
    if method in (METHOD_ACT, spec.embodied_method):
        return
    message = (f"{method!r} without an embodied_kg would label the {spec.name}'s "
               f"{spec.embodied_method} figure so: give embodied_kg, or \"{METHOD_ACT}\" to "
               "re-estimate it")  # fmt: skip
    raise error_at((name, "embodied_method"), message, method)
