"""``[catalog]`` numbers no real GPU or fab has are refused at their file, line and field:
a ``tdp_w``, ``die_area_mm2``, ``memory_gb`` or ``embodied_kg`` of 1e308 (or a rate or yield
near 0) was taken, and ``estimate --json`` showed ``energy_j`` or ``embodied_g`` as null
(the float overflowed to inf)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.settings.catalog import GpuOverride
from policies.footprint.gpus import DEFAULT_GPU_CATALOG

_ESTIMATE = ["estimate", "--model", "llama-3.1-8b", "--gpu", "L4", "--gpus", "2",
             "--intensity", "300", "--json"]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "problem"),
    [("[catalog.gpus.L4]\ntdp_w = 1e308\n",
      ":2: catalog.gpus.L4.tdp_w: Input should be less than or equal to 10000"),
     ("[catalog.gpus.L4]\ntdp_w = 1e308\nidle_w = 1e308\n",
      ":3: catalog.gpus.L4.idle_w: Input should be less than or equal to 10000"),
     ("[catalog.gpus.L4]\ndie_area_mm2 = 1e308\n",
      ":2: catalog.gpus.L4.die_area_mm2: Input should be less than or equal to 10000"),
     ("[catalog.gpus.L4]\nmemory_gb = 1e308\n",
      ":2: catalog.gpus.L4.memory_gb: Input should be less than or equal to 10000"),
     ("[catalog.gpus.L4]\nembodied_kg = 1e308\n",
      ":2: catalog.gpus.L4.embodied_kg: Input should be less than or equal to 10000"),
     ("[catalog.gpus.L4]\nmemory_bandwidth_gb_s = 1e308\n",
      ":2: catalog.gpus.L4.memory_bandwidth_gb_s: Input should be less than or equal to 100000"),
     ("[catalog.gpus.L4]\nfp16_tflops = 1e308\n",
      ":2: catalog.gpus.L4.fp16_tflops: Input should be less than or equal to 100000"),
     # a rate near 0 divided the work into a duration of 1e300 s and energy of 1e305 J
     ("[catalog.gpus.L4]\nmemory_bandwidth_gb_s = 1e-300\n",
      ":2: catalog.gpus.L4.memory_bandwidth_gb_s: Input should be greater than or equal to 1"),
     ("[catalog.gpus.L4]\nfp16_tflops = 1e-300\n",
      ":2: catalog.gpus.L4.fp16_tflops: Input should be greater than or equal to 0.1"),
     ("[catalog.gpus.L4]\nint8_tops = 1e-300\n",
      ":2: catalog.gpus.L4.int8_tops: Input should be greater than or equal to 0.1"),
     ("[catalog.gpus.L4]\ninterconnect_gb_s = 1e-300\n",
      ":2: catalog.gpus.L4.interconnect_gb_s: Input should be greater than or equal to 0.1"),
     ("[catalog.act]\nfab_intensity_g_per_kwh = 1e308\n",
      ":2: catalog.act.fab_intensity_g_per_kwh: must be at most 10000, got 1e+308"),
     ("[catalog.act]\nmpa_g_per_cm2 = 1e308\n",
      ":2: catalog.act.mpa_g_per_cm2: must be at most 100000, got 1e+308"),
     ("[catalog.act]\npackaging_g = 1e308\n",
      ":2: catalog.act.packaging_g: must be at most 1e+06, got 1e+308"),
     ("[catalog.act]\nfab_yield = 1e-308\n",
      ":2: catalog.act.fab_yield: must be at least 0.01 and at most 1, got 1e-308")],
)  # fmt: skip
def test_a_number_no_real_gpu_has_is_refused_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    config = tmp_path / "carbond.toml"
    config.write_text(text)
    assert main([*_ESTIMATE, "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert f"{config}{problem}" in out + err, out + err


def test_the_bounds_themselves_give_finite_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every number at its worst bound at once still prices a job: no null in the JSON."""
    config = tmp_path / "carbond.toml"
    config.write_text("[catalog.gpus.L4]\ntdp_w = 10000\nidle_w = 10000\ndie_area_mm2 = 10000\n"
                      "memory_gb = 10000\nmemory_bandwidth_gb_s = 1\nfp16_tflops = 0.1\n"
                      "fp32_tflops = 0.1\nint8_tops = 0.1\ninterconnect_gb_s = 0.1\n"
                      "[catalog.act]\nfab_intensity_g_per_kwh = 10000\nmpa_g_per_cm2 = 100000\n"
                      "packaging_g = 1e6\nfab_yield = 0.01\n")  # fmt: skip
    assert main([*_ESTIMATE, "--batch-size", "64", "--requests", "1000",
                 "--config", str(config)]) == 0  # fmt: skip
    payload = json.loads(capsys.readouterr().out)
    for key in ("duration_s", "energy_j", "operational_g", "embodied_g", "total_g"):
        assert isinstance(payload[key], float) and math.isfinite(payload[key]), key
    config.write_text("[catalog.gpus.L4]\nembodied_kg = 10000\n")
    assert main([*_ESTIMATE, "--config", str(config)]) == 0
    assert math.isfinite(json.loads(capsys.readouterr().out)["embodied_g"])


def test_every_built_in_gpu_is_within_the_bounds() -> None:
    """The bounds are generous: each catalog GPU's own figures pass them as an override."""
    names = [n for n in GpuOverride.model_fields if n not in ("architecture", "memory_type",
                                                               "embodied_method",
                                                               "nvml_names")]  # fmt: skip
    for gpu in DEFAULT_GPU_CATALOG:
        GpuOverride(**{name: getattr(gpu, name) for name in names})
