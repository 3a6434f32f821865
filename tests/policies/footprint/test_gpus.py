from __future__ import annotations

import pytest

from policies.errors import UnknownGpuError
from policies.footprint.embodied import DEFAULT_ACT, ActParameters, act_embodied_g
from policies.footprint.gpus import DEFAULT_GPU_CATALOG, METHOD_ACT, METHOD_PAPER, GpuCatalog

REQUIRED = ("T4", "V100", "A10", "A100-40GB", "A100-80GB", "L4", "L40S", "RTX6000-Ada",
            "H100-PCIe", "H100-SXM", "H200", "B200")  # fmt: skip


def test_catalog_has_every_required_gpu() -> None:
    assert set(REQUIRED) <= set(DEFAULT_GPU_CATALOG.names())


@pytest.mark.parametrize(("name", "kg"), [("T4", 10.3), ("RTX6000-Ada", 26.6)])
def test_paper_anchors_are_exact(name: str, kg: float) -> None:
    gpu = DEFAULT_GPU_CATALOG.get(name)
    assert gpu.embodied_kg == kg
    assert gpu.embodied_method == METHOD_PAPER


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("t4", "T4"),
        ("Tesla T4", "T4"),
        ("rtx-6000-ada", "RTX6000-Ada"),
        ("RTX 6000 Ada Generation", "RTX6000-Ada"),
        ("h100", "H100-SXM"),
        ("NVIDIA H100 80GB HBM3", "H100-SXM"),
        ("a100-sxm4-40gb", "A100-40GB"),
        ("B200", "B200"),
    ],
)
def test_aliases_are_case_insensitive(alias: str, name: str) -> None:
    assert DEFAULT_GPU_CATALOG.get(alias).name == name


def test_unknown_gpu_names_the_value() -> None:
    with pytest.raises(UnknownGpuError, match="'gtx-9000'"):
        DEFAULT_GPU_CATALOG.get("gtx-9000")


def test_act_estimate_follows_its_formula() -> None:
    h100 = DEFAULT_GPU_CATALOG.get("H100-SXM")
    assert h100.embodied_method == METHOD_ACT
    # 5 nm: (583 * 2.75 + 430 + 500) / 0.875 g/cm2 on 8.14 cm2, 80 GB at 65 g/GB, 150 g package.
    expected_g = 8.14 * (583 * 2.75 + 430 + 500) / 0.875 + 80 * 65 + 150
    assert h100.embodied_g == pytest.approx(expected_g)


def test_act_parameters_are_overridable() -> None:
    cleaner_fab = ActParameters(fab_intensity_g_per_kwh=100.0)
    base = act_embodied_g(814, 5, 80, "HBM3", DEFAULT_ACT)
    assert act_embodied_g(814, 5, 80, "HBM3", cleaner_fab) < base
    catalog = GpuCatalog.default(cleaner_fab)
    assert catalog.get("H100-SXM").embodied_kg < DEFAULT_GPU_CATALOG.get("H100-SXM").embodied_kg
    assert catalog.get("T4").embodied_kg == 10.3  # anchors stay the paper's


def test_newer_bigger_gpus_embody_more_carbon() -> None:
    kg = {g.name: g.embodied_kg for g in DEFAULT_GPU_CATALOG}
    assert kg["T4"] < kg["RTX6000-Ada"] < kg["H100-SXM"] < kg["H200"] < kg["B200"]


def test_override_records_config_method() -> None:
    catalog = DEFAULT_GPU_CATALOG.with_overrides({"l4": {"embodied_kg": 12.0, "idle_w": 15.0}})
    l4 = catalog.get("L4")
    assert (l4.embodied_kg, l4.embodied_method, l4.idle_w) == (12.0, "config", 15.0)
    assert DEFAULT_GPU_CATALOG.get("L4").embodied_method == METHOD_ACT


def test_override_of_unknown_field_is_an_error() -> None:
    with pytest.raises(TypeError):
        DEFAULT_GPU_CATALOG.with_overrides({"L4": {"colour": "green"}})


def test_an_override_of_what_act_reads_recomputes_an_act_estimate() -> None:
    """``[catalog.gpus.L4] memory_gb = 48`` kept the 24 GB L4's ACT figure (10.236 kg) under
    ``embodied_method = "act-estimate"``, while ACT gives the overridden L4 14.851 kg: the
    estimate named its method but not its inputs. It follows them now, under the catalog's
    own ACT parameters; a figure the site or the paper gives stays as given."""
    cleaner_fab = ActParameters(fab_intensity_g_per_kwh=100.0)
    for catalog in (DEFAULT_GPU_CATALOG, GpuCatalog.default(cleaner_fab)):
        params = catalog.act
        l4 = catalog.with_overrides({"L4": {"memory_gb": 48.0, "die_area_mm2": 400.0}}).get("L4")
        expected_kg = act_embodied_g(400.0, 5, 48.0, "GDDR6", params) / 1000.0
        assert l4.embodied_kg == pytest.approx(expected_kg)
        assert l4.embodied_kg > catalog.get("L4").embodied_kg
        assert l4.embodied_method == METHOD_ACT
    given = DEFAULT_GPU_CATALOG.with_overrides({"L4": {"memory_gb": 48.0, "embodied_kg": 12.0}})
    assert (given.get("L4").embodied_kg, given.get("L4").embodied_method) == (12.0, "config")
    paper = DEFAULT_GPU_CATALOG.with_overrides({"T4": {"memory_gb": 32.0}}).get("T4")
    assert (paper.embodied_kg, paper.embodied_method) == (10.3, "paper-table-1")


def test_choosing_the_act_method_for_a_paper_gpu_gives_its_act_figure() -> None:
    """``embodied_method = "act-estimate"`` on the T4 labelled the paper's 10.3 kg an ACT
    estimate (ACT gives 9.908 kg)."""
    t4 = DEFAULT_GPU_CATALOG.with_overrides({"T4": {"embodied_method": METHOD_ACT}}).get("T4")
    assert t4.embodied_kg == pytest.approx(t4.act_embodied_kg())
    assert round(t4.embodied_kg, 3) == 9.908


def test_overrides_keep_the_catalogs_act_parameters() -> None:
    dirty_fab = ActParameters(fab_intensity_g_per_kwh=900.0)
    catalog = GpuCatalog.default(dirty_fab).with_overrides({"T4": {"tdp_w": 80.0}})
    assert catalog.act is dirty_fab
