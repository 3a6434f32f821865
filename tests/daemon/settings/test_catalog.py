"""``[catalog]``: a site's GPU and ACT overrides are checked as every other setting is, one line
per problem naming the file, the line and the field, before any command uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli import main


@pytest.mark.parametrize(
    ("text", "problem"),
    [('[catalog.gpus.L4]\nembodied_kg = "lots"\n',
      ":2: catalog.gpus.L4.embodied_kg: Input should be a valid number"),
     ("[catalog.gpus.L4]\nembodied_kg = -5.0\n",
      ":2: catalog.gpus.L4.embodied_kg: Input should be greater than or equal to 0"),
     ('[catalog.gpus.T4]\ntdp_w = "abc"\n',
      ":2: catalog.gpus.T4.tdp_w: Input should be a valid number"),
     ('[catalog.gpus.L4]\nmemory_type = "XYZ"\n',
      ":2: catalog.gpus.L4.memory_type: unknown memory type 'XYZ' (known: GDDR6, HBM2"),
     # was taken: the estimator reads the architecture by name (bf16 and fp8 paths), so a
     # T4 of architecture "Pascal" or "Ada" ran bf16 on tensor cores it does not have
     ('[catalog.gpus.T4]\narchitecture = "Pascal"\n',
      ":2: catalog.gpus.T4.architecture: unknown architecture 'Pascal' (known: Turing, Volta, "
      "Ampere, Ada Lovelace, Hopper, Blackwell)"),
     # was taken: the L4's ACT figure, 10.236 kg, shown as the paper's Table 1
     ('[catalog.gpus.L4]\nembodied_method = "paper-table-1"\n',
      ":2: catalog.gpus.L4.embodied_method: 'paper-table-1' without an embodied_kg would "
      "label the L4's act-estimate figure so: give embodied_kg, or \"act-estimate\" to "
      "re-estimate it"),
     # was taken, and every tensor-parallel estimate on the L4 a ZeroDivisionError traceback
     ("[catalog.gpus.L4]\ninterconnect_gb_s = 0\n",
      ":2: catalog.gpus.L4.interconnect_gb_s: Input should be greater than or equal to 0.1"),
     ("[catalog.gpus.L4]\nembodid_kg = 3.0\n",
      ":2: catalog.gpus.L4.embodid_kg: Extra inputs are not permitted"),
     ("[catalog.gpus.L5]\nembodied_kg = 3.0\n",
      ":1: catalog.gpus.L5: 'L5' is no built-in GPU (known: T4,"),
     ("[catalog.gpus.T4]\nidle_w = 5\n\n[catalog.gpus.Z9]\ntdp_w = 3\n",
      ":4: catalog.gpus.Z9: 'Z9' is no built-in GPU (known: T4,"),
     ("[catalog.act]\nfab_yield = 0.0\n",
      ":2: catalog.act.fab_yield: must be at least 0.01 and at most 1, got 0"),
     ("[catalog.act]\npackaging_g = -100.0\n", ":2: catalog.act.packaging_g: must not be negative"),
     ("[catalog.act]\nnope = 1.0\n", ":2: catalog.act.nope: unknown ACT parameter (known: "),
     # was one line, the first problem's, at the [catalog.act] header (line 1)
     ("[catalog.act]\npackaging_g = 5.0\nmpa_g_per_cm2 = -1.0\nfab_yield = 2.0\n",
      ":3: catalog.act.mpa_g_per_cm2: must not be negative, got -1"),
     ("[catalog.act]\npackaging_g = 5.0\nmpa_g_per_cm2 = -1.0\nfab_yield = 2.0\n",
      ":4: catalog.act.fab_yield: must be at least 0.01 and at most 1, got 2"),
     ("[catalog.gpus.T4]\nidle_w = 80\n",
      ":2: catalog.gpus.T4.idle_w: idle_w 80 W is above tdp_w 70 W (the catalog's): a GPU idles"),
     ("[catalog.gpus.T4]\ntdp_w = 50\nidle_w = 60\n",
      ":3: catalog.gpus.T4.idle_w: idle_w 60 W is above tdp_w 50 W: "),
     ("[catalog.gpus.L4]\nembodied_kg = 3.0\n[catalog.gpus.T4]\ntdp_w = 5\n",
      ":4: catalog.gpus.T4.tdp_w: idle_w 10 W (the catalog's) is above tdp_w 5 W: ")],
)  # fmt: skip
def test_a_bad_override_is_a_config_problem_not_a_traceback_or_negative_grams(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    """A string, a zero yield or an unknown memory type in ``[catalog]`` was a traceback in
    every command that builds the catalog (``gpus``, ``estimate``, ``submit``, the daemon's
    start); a negative embodied figure or yield was taken, and its GPUs charged negative
    grams; the rest said ``catalog.gpus: ...`` without the file or line (an unknown field
    as ``GpuSpec.__init__() got an unexpected keyword argument``). Each is now refused as
    any bad setting is: exit 2, ``FILE:LINE: field: why``."""
    config = tmp_path / "carbond.toml"
    config.write_text(text)
    for command in (["gpus", "--json"], ["doctor"]):
        code = main([*command, "--config", str(config)])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        assert f"{config}{problem}" in out + err, (command, out + err)
        assert code == (2 if command[0] == "gpus" else 1)


def test_good_overrides_still_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "carbond.toml"
    config.write_text('[catalog.gpus."nvidia l4"]\nembodied_kg = 12\ntdp_w = 80\n'
                      'memory_type = "GDDR6"\n[catalog.act]\nfab_yield = 1\n'
                      '[catalog.gpus.T4]\nembodied_method = "act-estimate"\n'
                      '[catalog.gpus.A10]\nembodied_method = "act-estimate"\n'
                      '[catalog.gpus.RTX6000-Ada]\nembodied_method = "paper-table-1"\n'
                      '[catalog.gpus.V100]\nembodied_kg = 20\n'
                      'embodied_method = "vendor PCF"\n')  # fmt: skip
    assert main(["gpus", "--json", "--config", str(config)]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["T4"]["embodied_method"] == "act-estimate"
    assert rows["T4"]["embodied_kg"] == rows["T4"]["act_estimate_kg"]
    assert (rows["V100"]["embodied_kg"], rows["V100"]["embodied_method"]) == (20.0, "vendor PCF")
    assert (rows["L4"]["embodied_kg"], rows["L4"]["embodied_method"]) == (12.0, "config")
    assert rows["L4"]["tdp_w"] == 80.0 and rows["L4"]["memory_type"] == "GDDR6"
    assert main(["gpus", "--json"]) == 0
    base = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["H100-SXM"]["embodied_kg"] < base["H100-SXM"]["embodied_kg"]  # a better yield


def test_an_unknown_simulated_gpu_is_a_config_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``gpu.simulated_gpus = ["T5"]`` passed ``doctor`` (``qc discover simulated T5``), then
    ``carbond run`` stopped with exit 1, a runtime failure, naming neither file nor line.
    It is refused with the settings: exit 2, ``FILE:LINE: gpu.simulated_gpus: unknown GPU``;
    a catalog alias is still a name."""
    config = tmp_path / "carbond.toml"
    text = (f'state_dir = "{tmp_path / "state"}"\n[[regions]]\nname = "qc"\nzone = "CA-QC"\n'
            'gpus = "discover"\n[gpu]\nbackend = "simulated"\nsimulated_gpus = ["t4", "T5"]\n'
            "[metrics]\nport = 0\n")  # fmt: skip
    config.write_text(text)
    problem = f"{config}:8: gpu.simulated_gpus: unknown GPU 'T5' (known: T4,"
    assert main(["doctor", "--config", str(config)]) == 1
    assert f"FAIL  config     {problem}" in capsys.readouterr().out
    assert main(["run", "--config", str(config)]) == 2
    assert problem in capsys.readouterr().err
    config.write_text(text.replace(', "T5"', ', "nvidia h100 80gb hbm3"'))
    assert main(["gpus", "--live", "--config", str(config), "--json"]) == 0
    assert [g["catalog_name"] for g in json.loads(capsys.readouterr().out)] == ["T4", "H100-SXM"]


def test_an_architecture_is_read_in_any_case_as_the_catalog_spells_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``architecture = "turing"`` on the T4 was kept as written, and the estimator, which
    compares the catalog's spelling (``Turing``), put the T4's bf16 matmuls on tensor cores:
    a bf16 batch of 16 on llama-1b came out at 118 J instead of 285 J (prefill 8x faster)."""
    config = tmp_path / "carbond.toml"
    config.write_text('[catalog.gpus.T4]\narchitecture = "turing"\n')
    estimate = ["estimate", "--model", "llama-1b", "--gpu", "t4", "--precision", "bf16",
                "--batch-size", "16", "--intensity", "100", "--json"]  # fmt: skip
    assert main([*estimate, "--config", str(config)]) == 0
    overridden = json.loads(capsys.readouterr().out)
    assert main(estimate) == 0
    built_in = json.loads(capsys.readouterr().out)
    assert overridden["energy_j"] == built_in["energy_j"]
    assert main(["gpus", "--json", "--config", str(config)]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["T4"]["architecture"] == "Turing"
