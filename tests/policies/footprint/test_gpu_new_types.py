"""``GpuCatalog.with_new_types``: GPUs the built-in catalog lacks, from every field."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import pytest

from policies.footprint.embodied import ActParameters
from policies.footprint.gpus import (
    DEFAULT_GPU_CATALOG,
    GPU_SPEC_FIELDS,
    METHOD_ACT,
    GpuCatalog,
    gpu_key,
)

_L4 = DEFAULT_GPU_CATALOG.get("L4")


def _fields(**changed: Any) -> dict[str, Any]:
    fields = {name: value for name, value in asdict(_L4).items() if name in GPU_SPEC_FIELDS}
    return {**fields, **changed}


def test_a_new_type_is_found_by_its_name_and_nvml_names() -> None:
    catalog = DEFAULT_GPU_CATALOG.with_new_types(
        {"L4-test": _fields(embodied_method=METHOD_ACT, nvml_names=("NVIDIA L4 Test",))}
    )
    spec = catalog.get("nvidia l4 test")
    assert spec is catalog.get("L4-TEST")
    assert spec.name == "L4-test" and catalog.names()[-1] == "L4-test"
    assert replace(spec, name="L4", aliases=()) == replace(_L4, aliases=())  # the L4's figures
    assert len(DEFAULT_GPU_CATALOG) == len(catalog) - 1


def test_an_act_estimated_new_type_uses_the_catalogs_act_parameters() -> None:
    greener = GpuCatalog.default(ActParameters(fab_yield=1.0))
    kg = greener.with_new_types({"X": _fields(embodied_method=METHOD_ACT)}).get("X").embodied_kg
    assert kg == pytest.approx(greener.get("L4").embodied_kg)
    assert kg < _L4.embodied_kg
    given = greener.with_new_types({"X": _fields(embodied_kg=3.0, embodied_method="vendor")})
    assert (given.get("X").embodied_kg, given.get("X").embodied_method) == (3.0, "vendor")


@pytest.mark.parametrize(
    ("fields", "error"),
    [(_fields(), r"GPU 'X' lacks embodied_method"),
     ({"tdp_w": 1.0, "embodied_method": METHOD_ACT}, r"GPU 'X' lacks architecture, year, "),
     (_fields(embodied_method="vendor"), r"GPU 'X' lacks embodied_kg")],
)  # fmt: skip
def test_a_new_type_lacking_a_field_is_refused(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(TypeError, match=error):
        DEFAULT_GPU_CATALOG.with_new_types({"X": fields})


@pytest.mark.parametrize("name", ["l4", "NVIDIA L4", "tesla-t4"])
def test_a_name_another_gpu_has_is_refused(name: str) -> None:
    """A board name two GPUs have found whichever was listed last."""
    with pytest.raises(ValueError, match=r"is also"):
        DEFAULT_GPU_CATALOG.with_new_types(
            {"X": _fields(embodied_method=METHOD_ACT, nvml_names=(name,))}
        )
    with pytest.raises(ValueError, match=r"is also"):
        DEFAULT_GPU_CATALOG.with_overrides({"A10": {"nvml_names": (name,)}})


def test_an_override_adds_nvml_names_to_a_built_in_gpu() -> None:
    catalog = DEFAULT_GPU_CATALOG.with_overrides({"A10": {"nvml_names": ("NVIDIA A10G",)}})
    assert catalog.get("NVIDIA A10G").name == "A10"
    assert gpu_key("NVIDIA A10G") == gpu_key("a10-g") == "a10g"
