"""The GPU catalog: specifications and embodied carbon of the GPUs carbond plans for.

Specifications are the vendors' data-sheet figures (dense tensor FP16/BF16 without sparsity;
FP32 is the non-tensor CUDA-core rate). Idle power is the typical P8 draw reported by
``nvidia-smi`` for the board. Embodied carbon: the paper's Table 1 for the two GPUs it studied
(T4 10.3 kg, RTX 6000 Ada 26.6 kg), an ACT-style estimate (:mod:`.embodied`) for the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from policies.errors import UnknownGpuError
from policies.footprint.embodied import DEFAULT_ACT, ActParameters, act_embodied_g

__all__ = [
    "DEFAULT_GPU_CATALOG",
    "GPU_SPEC_FIELDS",
    "METHOD_ACT",
    "METHOD_PAPER",
    "GpuCatalog",
    "GpuSpec",
    "gpu_key",
]

METHOD_PAPER: Final = "paper-table-1"
METHOD_ACT: Final = "act-estimate"


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """One GPU model. Units are in the field names."""

    name: str
    architecture: str
    year: int
    die_area_mm2: float
    process_node_nm: int
    memory_gb: float
    memory_type: str
    memory_bandwidth_gb_s: float
    fp16_tflops: float
    fp32_tflops: float
    int8_tops: float
    tdp_w: float
    idle_w: float
    interconnect_gb_s: float
    embodied_kg: float
    embodied_method: str
    aliases: tuple[str, ...] = ()

    @property
    def embodied_g(self) -> float:
        """Embodied carbon in grams CO2e."""
        return self.embodied_kg * 1000.0

    def act_embodied_kg(self, params: ActParameters = DEFAULT_ACT) -> float:
        """The ACT-style estimate for this GPU, whatever method its catalog value came from."""
        return (
            act_embodied_g(
                self.die_area_mm2, self.process_node_nm, self.memory_gb, self.memory_type, params
            )
            / 1000.0
        )


# The fields a GPU the built-in catalog lacks must be given (GpuCatalog.with_new_types): all
# but its name, aliases and embodied carbon (a figure with its method, or the ACT estimate).
GPU_SPEC_FIELDS: Final = (
    "architecture", "year", "die_area_mm2", "process_node_nm", "memory_gb", "memory_type",
    "memory_bandwidth_gb_s", "fp16_tflops", "fp32_tflops", "int8_tops", "tdp_w", "idle_w",
    "interconnect_gb_s",
)  # fmt: skip


def gpu_key(name: str) -> str:
    """The key the catalog looks ``name`` up by: any case, no spaces, dashes or underscores,
    no leading ``NVIDIA`` (``"NVIDIA H100 NVL"`` and ``"h100-nvl"`` are one name)."""
    key = re.sub(r"[\s_\-]+", "", name.strip().lower())
    return key.removeprefix("nvidia")


# name, arch, year, die mm2, node nm, mem GB, mem type, mem GB/s, fp16 TFLOP/s, fp32 TFLOP/s,
# int8 TOP/s, TDP W, idle W, GPU-to-GPU GB/s per direction (NVLink, else PCIe), paper embodied kg
# or None (ACT estimate), aliases (NVML board names included).
_SPECS: Final[tuple[tuple[Any, ...], ...]] = (
    ("T4", "Turing", 2018, 545, 12, 16, "GDDR6", 320, 65, 8.1, 130, 70, 10, 16, 10.3,
     ("tesla-t4",)),
    ("V100", "Volta", 2017, 815, 12, 32, "HBM2", 900, 125, 15.7, 62, 300, 40, 300, None,
     ("v100-sxm2-32gb", "tesla-v100-sxm2-32gb", "tesla-v100")),
    ("A10", "Ampere", 2021, 628, 8, 24, "GDDR6", 600, 125, 31.2, 250, 150, 20, 32, None, ()),
    ("A100-40GB", "Ampere", 2020, 826, 7, 40, "HBM2", 1555, 312, 19.5, 624, 400, 50, 600, None,
     ("a100", "a100-sxm4-40gb", "a100-40gb-sxm")),
    ("A100-80GB", "Ampere", 2020, 826, 7, 80, "HBM2e", 2039, 312, 19.5, 624, 400, 55, 600, None,
     ("a100-sxm4-80gb", "a100-80gb-sxm")),
    # PCIe A100s (NVML "NVIDIA A100-PCIE-40GB", "NVIDIA A100 80GB PCIe"): the SXM4 die, memory
    # and tensor rates at 250/300 W (NVIDIA A100 data sheet), 1,555/1,935 GB/s, PCIe Gen4 x16
    # between GPUs (an NVLink bridge joins pairs only); idle ~35/45 W (nvidia-smi at 0 %).
    ("A100-PCIe-40GB", "Ampere", 2020, 826, 7, 40, "HBM2", 1555, 312, 19.5, 624, 250, 35, 32,
     None, ()),
    ("A100-PCIe-80GB", "Ampere", 2021, 826, 7, 80, "HBM2e", 1935, 312, 19.5, 624, 300, 45, 32,
     None, ("a100-80gb-pcie",)),
    ("L4", "Ada Lovelace", 2023, 294.5, 5, 24, "GDDR6", 300, 121, 30.3, 242, 72, 16, 64, None,
     ()),
    ("L40S", "Ada Lovelace", 2023, 608.5, 5, 48, "GDDR6", 864, 362, 91.6, 733, 350, 35, 64, None,
     ()),
    ("RTX6000-Ada", "Ada Lovelace", 2023, 608.5, 5, 48, "GDDR6", 960, 364, 91.1, 728, 300, 25, 64,
     26.6, ("rtx-6000-ada", "rtx6000ada", "rtx-6000-ada-generation", "rtx6000")),
    ("H100-PCIe", "Hopper", 2022, 814, 5, 80, "HBM2e", 2000, 756, 51.2, 1513, 350, 50, 128, None,
     ("h100-pcie-80gb",)),
    ("H100-SXM", "Hopper", 2022, 814, 5, 80, "HBM3", 3350, 989, 67, 1979, 700, 70, 900, None,
     ("h100", "h100-80gb-hbm3", "h100-sxm5-80gb")),
    ("H200", "Hopper", 2024, 814, 5, 141, "HBM3e", 4800, 989, 67, 1979, 700, 75, 900, None,
     ("h200-sxm", "h200-141gb-hbm3e")),
    # B200: two reticle-sized dies; NVIDIA publishes no area, ~800 mm2 each is the usual figure.
    ("B200", "Blackwell", 2024, 1600, 4, 192, "HBM3e", 8000, 2250, 80, 4500, 1000, 140, 1800,
     None,
     ("b200-sxm", "b200-192gb")),
)  # fmt: skip


def _build(params: ActParameters) -> tuple[GpuSpec, ...]:
    specs = []
    for row in _SPECS:
        (name, arch, year, die, node, mem, mtype, bw, f16, f32, i8, tdp, idle, link, paper,
         aliases) = row  # fmt: skip
        if paper is None:
            kg = act_embodied_g(die, node, mem, mtype, params) / 1000.0
            method = METHOD_ACT
        else:
            kg, method = float(paper), METHOD_PAPER
        specs.append(
            GpuSpec(name, arch, year, float(die), node, float(mem), mtype, float(bw), float(f16),
                    float(f32), float(i8), float(tdp), float(idle), float(link), kg, method,
                    tuple(aliases))
        )  # fmt: skip
    return tuple(specs)


class GpuCatalog:
    """An immutable set of :class:`GpuSpec` looked up by name or alias, case-insensitively."""

    __slots__ = ("_act", "_by_key", "_specs")

    def __init__(self, specs: Iterable[GpuSpec], act: ActParameters = DEFAULT_ACT) -> None:
        self._specs = tuple(specs)
        self._act = act
        self._by_key: dict[str, GpuSpec] = {}
        for spec in self._specs:
            for key in (spec.name, *spec.aliases):
                other = self._by_key.setdefault(gpu_key(key), spec)
                if other is not spec and other.name != spec.name:
                    raise ValueError(f"GPU name {key!r} of {spec.name} is also {other.name}'s")

    @classmethod
    def default(cls, params: ActParameters = DEFAULT_ACT) -> GpuCatalog:
        """The built-in catalog, with ACT estimates computed from ``params``."""
        return cls(_build(params), params)

    @property
    def act(self) -> ActParameters:
        """The ACT parameters of this catalog's ``act-estimate`` figures."""
        return self._act

    def __iter__(self) -> Iterator[GpuSpec]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> tuple[str, ...]:
        """Canonical names, in catalog order."""
        return tuple(spec.name for spec in self._specs)

    def get(self, name: str) -> GpuSpec:
        """The GPU called ``name`` (canonical, alias or NVML board name; any case).

        Raises:
            UnknownGpuError: no GPU has that name.
        """
        try:
            return self._by_key[gpu_key(name)]
        except KeyError:
            raise UnknownGpuError(name, self.names()) from None

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> GpuCatalog:
        """A copy where ``overrides[gpu_name]`` replaces fields of that GPU.

        Overriding ``embodied_kg`` without ``embodied_method`` records the method as
        ``"config"``; ``nvml_names`` adds board names to the GPU's aliases. A GPU left (or put)
        on ``"act-estimate"`` without an ``embodied_kg`` gets the ACT estimate of its
        overridden fields (die area, node, memory) under this catalog's :attr:`act`
        parameters; until 2026-12-07 it kept the built-in fields' figure.

        Raises:
            UnknownGpuError: an override names an unknown GPU.
            TypeError: an override names an unknown field.
            ValueError: an NVML name is already another GPU's.
        """
        changed = {self.get(name).name: dict(fields) for name, fields in overrides.items()}
        specs = []
        for spec in self._specs:
            fields = changed.get(spec.name)
            if not fields:
                specs.append(spec)
                continue
            if "embodied_kg" in fields:
                fields.setdefault("embodied_method", "config")
            fields["aliases"] = (*spec.aliases, *fields.pop("nvml_names", ()))
            changed_spec = replace(spec, **fields)
            if changed_spec.embodied_method == METHOD_ACT and "embodied_kg" not in fields:
                changed_spec = replace(
                    changed_spec, embodied_kg=changed_spec.act_embodied_kg(self._act)
                )
            specs.append(changed_spec)
        return GpuCatalog(specs, self._act)

    def with_new_types(self, types: Mapping[str, Mapping[str, Any]]) -> GpuCatalog:
        """A copy with a GPU the catalog lacks added for each ``types[name]``: every field of
        :data:`GPU_SPEC_FIELDS`, and ``embodied_kg`` with its ``embodied_method`` or
        ``embodied_method = "act-estimate"`` alone (the ACT estimate of its die area, node and
        memory under this catalog's :attr:`act`). ``nvml_names`` (the board names NVML
        reports) become aliases, so that discovery finds the type.

        Raises:
            TypeError: a type lacks a field or names an unknown one.
            ValueError: a name or NVML name is already another GPU's.
        """
        specs = list(self._specs)
        for name, given in types.items():
            fields = dict(given)
            missing = [f for f in (*GPU_SPEC_FIELDS, "embodied_method") if f not in fields]
            if missing:
                raise TypeError(f"GPU {name!r} lacks {', '.join(missing)}")
            aliases = tuple(fields.pop("nvml_names", ()))
            if "embodied_kg" not in fields:
                if fields["embodied_method"] != METHOD_ACT:
                    raise TypeError(f"GPU {name!r} lacks embodied_kg")
                fields["embodied_kg"] = act_embodied_g(
                    fields["die_area_mm2"], fields["process_node_nm"], fields["memory_gb"],
                    fields["memory_type"], self._act,
                ) / 1000.0  # fmt: skip
            specs.append(GpuSpec(name=name, aliases=aliases, **fields))
        return GpuCatalog(specs, self._act)


DEFAULT_GPU_CATALOG: Final = GpuCatalog.default()
