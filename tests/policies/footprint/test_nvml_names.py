"""NVML board names (``nvidia-smi --query-gpu=name``, ``nvmlDeviceGetName``) as real drivers
report them, matched to the catalog entry of that exact board, and only that one: a PCIe
A100 is not an SXM A100 (250/300 W, not 400 W; 1,555/1,935 GB/s). docs/gpus.md lists them."""

from __future__ import annotations

import pytest

from policies.errors import UnknownGpuError
from policies.footprint.gpus import DEFAULT_GPU_CATALOG

NVML_NAMES = [
    ("Tesla T4", "T4"),
    ("Tesla V100-SXM2-32GB", "V100"),
    ("NVIDIA A10", "A10"),
    ("NVIDIA A100-SXM4-40GB", "A100-40GB"),
    ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
    ("NVIDIA A100-PCIE-40GB", "A100-PCIe-40GB"),
    ("A100-PCIE-40GB", "A100-PCIe-40GB"),  # as older drivers (455.32) name it
    ("NVIDIA A100 80GB PCIe", "A100-PCIe-80GB"),
    ("NVIDIA L4", "L4"),
    ("NVIDIA L40S", "L40S"),
    ("NVIDIA RTX 6000 Ada Generation", "RTX6000-Ada"),
    ("NVIDIA H100 PCIe", "H100-PCIe"),
    ("NVIDIA H100 80GB HBM3", "H100-SXM"),
    ("NVIDIA H200", "H200"),
    ("NVIDIA B200", "B200"),
]

# Boards the catalog has no entry for: each must stay unmatched (gpu_not_in_catalog), never
# be taken for a near namesake with other memory or power.
UNMATCHED = [
    "NVIDIA H100 NVL",  # 94 GB, 350-400 W: not the H100-PCIe (80 GB, 350 W)
    "NVIDIA H200 NVL",  # 600 W: not the 700 W H200 SXM
    "NVIDIA L40",  # 300 W: not the L40S
    "NVIDIA A10G",  # AWS's board
    "Tesla V100-SXM2-16GB",  # 16 GB: not the 32 GB V100
    "Tesla V100-PCIE-32GB",  # 250 W: not the 300 W SXM2
    "Quadro RTX 6000",  # Turing: not the RTX 6000 Ada
    "NVIDIA H800",
]


@pytest.mark.parametrize(("nvml_name", "catalog_name"), NVML_NAMES)
def test_an_nvml_board_name_matches_its_own_catalog_entry(
    nvml_name: str, catalog_name: str
) -> None:
    assert DEFAULT_GPU_CATALOG.get(nvml_name).name == catalog_name


@pytest.mark.parametrize("nvml_name", UNMATCHED)
def test_a_board_the_catalog_lacks_stays_unmatched(nvml_name: str) -> None:
    with pytest.raises(UnknownGpuError):
        DEFAULT_GPU_CATALOG.get(nvml_name)


@pytest.mark.parametrize(
    ("name", "memory_gb", "tdp_w", "bandwidth_gb_s"),
    [("A100-PCIe-40GB", 40, 250, 1555), ("A100-PCIe-80GB", 80, 300, 1935),
     ("A100-40GB", 40, 400, 1555), ("A100-80GB", 80, 400, 2039)],
)  # fmt: skip
def test_the_pcie_a100s_have_their_data_sheet_memory_power_and_bandwidth(
    name: str, memory_gb: float, tdp_w: float, bandwidth_gb_s: float
) -> None:
    gpu = DEFAULT_GPU_CATALOG.get(name)
    assert (gpu.memory_gb, gpu.tdp_w, gpu.memory_bandwidth_gb_s) == (
        memory_gb,
        tdp_w,
        bandwidth_gb_s,
    )
