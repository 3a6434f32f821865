"""A ``[catalog.gpus.NAME]`` the built-in catalog lacks defines a new GPU type (a board such as
the H100 NVL, L40, A10G, V100S): every field given, checked as an override's, the missing ones
named at the table's line; its NVML names collide with no other GPU's. Before, such a table
was refused (``unknown GPU``) and a site with the board could not use carbond."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.settings import load_settings
from policies.footprint.gpus import DEFAULT_GPU_CATALOG, GPU_SPEC_FIELDS

# the H100 PCIe's figures under another name: its estimates must be the H100 PCIe's
_PCIE = DEFAULT_GPU_CATALOG.get("H100-PCIe")


def _fields(skip: tuple[str, ...] = ()) -> str:
    lines = [f"{name} = {json.dumps(getattr(_PCIE, name))}" for name in GPU_SPEC_FIELDS
             if name not in skip]  # fmt: skip
    return "\n".join(lines) + "\n"


def _write(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "carbond.toml"
    config.write_text(text)
    return config


def test_a_new_type_is_estimated_and_listed_as_its_fields_say(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = ('[catalog.gpus.H100-NVL-test]\n' + _fields() + 'embodied_method = "act-estimate"\n'
            'nvml_names = ["NVIDIA H100 NVL test"]\n'
            '[catalog.gpus.A10G]\n' + _fields() + 'embodied_kg = 42.5\n'
            'embodied_method = "vendor PCF"\n')  # fmt: skip
    config = _write(tmp_path, text)
    estimate = ["estimate", "--model", "llama-3.1-8b", "--intensity", "100", "--json"]
    assert main([*estimate, "--gpu", "h100-pcie"]) == 0
    built_in = json.loads(capsys.readouterr().out)
    assert main([*estimate, "--gpu", "NVIDIA H100 NVL test", "--config", str(config)]) == 0
    new = json.loads(capsys.readouterr().out)
    assert new["energy_j"] == built_in["energy_j"] > 0
    assert new["embodied_g"] == built_in["embodied_g"] > 0  # the same ACT figure
    assert main(["gpus", "--json", "--config", str(config)]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["H100-NVL-test"]["embodied_kg"] == pytest.approx(_PCIE.embodied_kg, abs=1e-3)
    assert rows["H100-NVL-test"]["embodied_method"] == "act-estimate"
    assert (rows["A10G"]["embodied_kg"], rows["A10G"]["embodied_method"]) == (42.5, "vendor PCF")
    assert rows["A10G"]["tdp_w"] == _PCIE.tdp_w
    assert main(["gpus", "--json"]) == 0  # the built-in catalog is as it was
    assert "A10G" not in {row["name"] for row in json.loads(capsys.readouterr().out)}


def test_a_region_declares_a_new_type_and_the_simulated_backend_runs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (f'state_dir = "{tmp_path / "state"}"\n[gpu]\nbackend = "simulated"\n'
            'simulated_gpus = ["L40-test"]\n[[regions]]\nname = "qc"\nzone = "CA-QC"\n'
            'executor = "simulated"\ngpus = ["L40-test", { type = "l40 test", count = 2 }]\n'
            '[catalog.gpus.L40-test]\n' + _fields() + 'embodied_kg = 30.0\n'
            'embodied_method = "vendor"\n')  # fmt: skip
    config = _write(tmp_path, text)
    main(["doctor", "--config", str(config)])
    out = capsys.readouterr().out
    assert "PASS  config" in out and "PASS  gpus       qc (CA-QC, simulated): 3 declared" in out
    assert main(["gpus", "--live", "--config", str(config), "--json"]) == 0
    assert {g["catalog_name"] for g in json.loads(capsys.readouterr().out)} == {"L40-test"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [("[catalog.gpus.L40]\ntdp_w = 300\n",
      ":1: catalog.gpus.L40: 'L40' is no built-in GPU (known: T4, "),
     ("[catalog.gpus.L40]\n" + _fields(skip=("tdp_w", "year")) + "embodied_kg = 3.0\n",
      ":1: catalog.gpus.L40: 'L40' is no built-in GPU (known: T4, V100, A10, A100-40GB, "
      "A100-80GB, A100-PCIe-40GB, A100-PCIe-80GB, L4, L40S, RTX6000-Ada, H100-PCIe, H100-SXM, "
      "H200, B200); to define it as a new type give year, tdp_w, embodied_method (with "
      "embodied_kg, or \"act-estimate\" alone)"),
     ("[catalog.gpus.L40]\n" + _fields() + 'embodied_method = "vendor"\n',
      ":1: catalog.gpus.L40: 'L40' is no built-in GPU (known: T4, V100, A10, A100-40GB, "
      "A100-80GB, A100-PCIe-40GB, A100-PCIe-80GB, L4, L40S, RTX6000-Ada, H100-PCIe, H100-SXM, "
      "H200, B200); to define it as a new type give embodied_kg (or embodied_method = "
      "\"act-estimate\")"),
     # the bounds of an override hold for a new type
     ("[catalog.gpus.L40]\n" + _fields(skip=("idle_w",)) + "idle_w = 900\n"
      'embodied_method = "act-estimate"\n',
      ":14: catalog.gpus.L40.idle_w: idle_w 900 W is above tdp_w 350 W: a GPU idles"),
     ("[catalog.gpus.L40]\n" + _fields(skip=("fp16_tflops",)) + "fp16_tflops = 0\n"
      'embodied_method = "act-estimate"\n',
      ":14: catalog.gpus.L40.fp16_tflops: Input should be greater than or equal to 0.1"),
     # an NVML name another GPU has: which one a board is would depend on the tables' order
     ("[catalog.gpus.L40]\n" + _fields() + 'embodied_method = "act-estimate"\n'
      'nvml_names = ["NVIDIA H100 PCIe"]\n',
      ":16: catalog.gpus.L40.nvml_names: NVML name 'NVIDIA H100 PCIe' is already H100-PCIe's"),
     ("[catalog.gpus.L40]\n" + _fields() + 'embodied_method = "act-estimate"\n'
      'nvml_names = ["NVIDIA L40"]\n[catalog.gpus.L40-b]\n' + _fields()
      + 'embodied_method = "act-estimate"\nnvml_names = ["nvidia l40"]\n',
      ":32: catalog.gpus.L40-b.nvml_names: NVML name 'nvidia l40' is already L40's"),
     ("[catalog.gpus.L40x]\n" + _fields() + 'embodied_method = "act-estimate"\n'
      '[catalog.gpus.l40_x]\n' + _fields() + 'embodied_method = "act-estimate"\n',
      ":16: catalog.gpus.l40_x: the same GPU name as L40x"),
     ('[catalog.gpus.L40]\n' + _fields() + 'embodied_method = "act-estimate"\n'
      'nvml_names = [" "]\n',
      ":16: catalog.gpus.L40.nvml_names: an NVML name must not be empty"),
     # a region's GPU the catalog lacks still names the new types among the known ones
     ('[[regions]]\nname = "qc"\nzone = "CA-QC"\ngpus = ["L41"]\n[catalog.gpus.L40]\n'
      + _fields() + 'embodied_method = "act-estimate"\n',
      ":4: regions.qc.gpus: unknown GPU 'L41' (known: T4, V100, A10, A100-40GB, A100-80GB, "
      "A100-PCIe-40GB, A100-PCIe-80GB, L4, L40S, RTX6000-Ada, H100-PCIe, H100-SXM, H200, "
      "B200, L40)")],
)  # fmt: skip
def test_an_incomplete_or_colliding_new_type_is_refused_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    config = _write(tmp_path, text)
    assert main(["gpus", "--json", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert f"{config}{problem}" in err, err


def test_the_example_of_docs_gpus_md_defines_the_h100_nvl(tmp_path: Path) -> None:
    """docs/gpus.md, "A GPU the catalog lacks": its table loads and names the NVML board."""
    docs = (Path(__file__).parents[3] / "docs" / "gpus.md").read_text(encoding="utf-8")
    section = docs.split("### A GPU the catalog lacks", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    settings = load_settings(_write(tmp_path, example))
    spec = settings.catalog.gpu_catalog().get("NVIDIA H100 NVL")
    assert (spec.name, spec.architecture, spec.embodied_method) == ("H100-NVL", "Hopper",
                                                                    "act-estimate")  # fmt: skip
