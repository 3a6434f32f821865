"""Embodied (manufacturing) carbon of a GPU, ACT-style.

    C_em = die_area_cm2 x CPA(node) + memory_gb x CPG(memory type) + packaging
    CPA(node) = (fab_intensity x EPA(node) + GPA(node) + MPA(node)) / yield

Sources (ACT, Gupta et al., ISCA'22, public tool at github.com/facebookresearch/ACT):
- EPA, fab electricity per area (kWh/cm2): ``logic/epa.json``.
- GPA, fab gases per area (gCO2e/cm2) at 95 % abatement: ``logic/gpa_95.json``.
- MPA, procured materials per area (gCO2e/cm2): ``logic/materials.json`` (500 for every node).
- Fab grid intensity 583 gCO2e/kWh ("loc_taiwan"), fab yield 0.875 (ACT's defaults).
- DRAM carbon per GB: ACT ``dram/dram_hynix.json`` ``ddr4_10nm`` = 65 g/GB, used for GDDR6 and,
  for lack of an HBM entry in ACT, for HBM too (override per GPU if you have better figures).
- Packaging: 150 g per IC package (ACT ``CARBON_PER_IC_PACKAGE``).

Every parameter is a field of :class:`ActParameters`, so a site can override any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

__all__ = ["DEFAULT_ACT", "ActParameters", "act_embodied_g"]

_EPA_KWH_PER_CM2: Final = MappingProxyType(
    {28: 0.90, 22: 1.077, 20: 1.200, 14: 1.200, 10: 1.475, 8: 1.520, 7: 2.150, 5: 2.750, 3: 3.250}
)
_GPA95_G_PER_CM2: Final = MappingProxyType(
    {28: 175.0, 22: 175.0, 20: 190.0, 14: 200.0, 10: 240.0, 8: 240.0, 7: 350.0, 5: 430.0, 3: 470.0}
)
_MPA_G_PER_CM2: Final = 500.0
_MEMORY_G_PER_GB: Final = MappingProxyType(
    {"GDDR6": 65.0, "HBM2": 65.0, "HBM2e": 65.0, "HBM3": 65.0, "HBM3e": 65.0}
)


@dataclass(frozen=True, slots=True)
class ActParameters:
    """Parameters of the ACT-style embodied-carbon estimate (see module docstring)."""

    fab_intensity_g_per_kwh: float = 583.0
    fab_yield: float = 0.875
    epa_kwh_per_cm2: Mapping[int, float] = field(default_factory=lambda: _EPA_KWH_PER_CM2)
    gpa_g_per_cm2: Mapping[int, float] = field(default_factory=lambda: _GPA95_G_PER_CM2)
    mpa_g_per_cm2: float = _MPA_G_PER_CM2
    memory_g_per_gb: Mapping[str, float] = field(default_factory=lambda: _MEMORY_G_PER_GB)
    packaging_g: float = 150.0

    def node_key(self, process_node_nm: int) -> int:
        """The ACT node entry used for ``process_node_nm``: the nearest listed node at or above
        it (12 nm uses 14 nm; 4 nm uses 5 nm; 2 nm, below every node, 3 nm), or, for a node
        above every listed one, the largest listed node, its nearest (40 nm uses 28 nm)."""
        listed = sorted(self.epa_kwh_per_cm2)
        at_or_above = [n for n in listed if n >= process_node_nm]
        return at_or_above[0] if at_or_above else listed[-1]

    def carbon_per_area_g_per_cm2(self, process_node_nm: int) -> float:
        """CPA: grams CO2e per cm2 of good die at ``process_node_nm``."""
        node = self.node_key(process_node_nm)
        raw = (
            self.fab_intensity_g_per_kwh * self.epa_kwh_per_cm2[node]
            + self.gpa_g_per_cm2[node]
            + self.mpa_g_per_cm2
        )
        return raw / self.fab_yield


DEFAULT_ACT: Final = ActParameters()


def act_embodied_g(
    die_area_mm2: float,
    process_node_nm: int,
    memory_gb: float,
    memory_type: str,
    params: ActParameters = DEFAULT_ACT,
) -> float:
    """ACT-style embodied carbon of one GPU in grams CO2e.

    Raises:
        KeyError: ``memory_type`` has no carbon-per-GB entry in ``params``.
    """
    die_g = die_area_mm2 / 100.0 * params.carbon_per_area_g_per_cm2(process_node_nm)
    memory_g = memory_gb * params.memory_g_per_gb[memory_type]
    return die_g + memory_g + params.packaging_g
