"""Numbers in the tables: a whole number reads the same above 100 as below it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.cli.output import print_table
from daemon.reports.render import fixed
from policies.footprint.accounting import J_PER_KWH
from tests.daemon.cli.cli_run import run_cli


def test_the_gpus_table_writes_whole_watts_alike(capsys: pytest.CaptureFixture[str]) -> None:
    """The T4's TDP read ``70`` and the V100's ``300.0`` in one column."""
    assert main(["gpus"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.split("|")[1:-1]]
                                          for line in lines)}  # fmt: skip
    tdp = rows["name"].index("tdp_w")
    assert (rows["T4"][tdp], rows["V100"][tdp]) == ("70", "300")
    bandwidth = rows["name"].index("memory_bandwidth_gb_s")
    assert rows["A100-40GB"][bandwidth] == "1,555"


@pytest.mark.parametrize(
    ("grams", "shown"),
    [(12_345_678.9, "12,345,678.90"), (1.5, "1.50"), (0.0976, "0.0976"), (4.13e-05, "0.0000413"),
     (-2.5e-05, "-0.000025"), (1e-9, "0.00")],
)  # fmt: skip
def test_the_jobs_totals_line_writes_grams_in_fixed_notation(grams: float, shown: str) -> None:
    """``carbond jobs``' totals line wrote a few tens of micrograms saved as ``4.13e-05``."""
    from daemon.cli.jobs_cmd import _grams_line

    totals = {"jobs": 2.0, "expected_total_g": grams, "measured_total_g": grams,
              "finished": 2.0, "ended_without_run": 0.0, "saved_g": grams}  # fmt: skip
    line = _grams_line(totals)
    assert f"expected {shown} g; measured {shown} g" in line and f"saved {shown} g" in line


# A figure in exponent notation, as ``.4g`` or ``.5g`` writes one past 9,999 or below 0.0001.
_EXPONENT = re.compile(r"\d[eE][+-]\d")
# One request of one token: every gram figure is a few micrograms.
_TINY = ("estimate", "--model", "llama-1b", "--gpu", "t4", "--zone", "CA-QC", "--batch-size", "1",
         "--requests", "1", "--input-tokens", "1", "--output-tokens", "1")  # fmt: skip


@pytest.fixture
def _no_site_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CARBOND_CONFIG", raising=False)
    monkeypatch.setattr("daemon.settings.DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")


def test_print_table_writes_small_figures_in_fixed_notation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A float cell below 0.0001 read ``4.13e-05``; one below 100 keeps four digits."""
    print_table(None, ("name", "value"), [["tiny", 4.13e-05], ["small", 0.123456], ["big", 12.5]])
    rows = dict(
        tuple(c.strip() for c in line.split("|")[1:-1])
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| ")
    )
    assert (rows["tiny"], rows["small"], rows["big"]) == ("0.0000413", "0.1235", "12.5")


@pytest.mark.usefixtures("_no_site_config")
def test_estimate_writes_micrograms_in_fixed_notation(capsys: pytest.CaptureFixture[str]) -> None:
    """``carbond estimate`` for one token wrote ``total | 6.4939e-06 g`` (``.5g``)."""
    code, out, _ = run_cli(capsys, *_TINY, "--json")
    payload = json.loads(out)
    assert code == 0 and payload["total_g"] < 1e-4
    code, out, _ = run_cli(capsys, *_TINY)
    assert code == 0 and not _EXPONENT.search(out), out
    cells = [[x.strip() for x in line.split("|")[1:-1]] for line in out.splitlines()
             if line.startswith("| ")]  # fmt: skip
    rows = {c[0]: c[1] for c in cells}
    assert rows["total"] == f"{fixed(payload['total_g'], 5)} g"
    assert rows["operational"] == f"{fixed(payload['operational_g'], 5)} g"


@pytest.mark.usefixtures("_no_site_config")
def test_estimate_keeps_the_digits_of_nanograms(capsys: pytest.CaptureFixture[str]) -> None:
    """One token at 0.01 gCO2e/kWh is a few nanograms: nine decimals at most wrote its
    operational grams ``0.000000007`` (one digit of the five asked)."""
    argv = (*_TINY[:5], "--intensity", "0.01", *_TINY[7:])
    code, out, _ = run_cli(capsys, *argv, "--json")
    grams = json.loads(out)["operational_g"]
    assert code == 0 and 1e-12 < grams < 1e-8
    code, out, _ = run_cli(capsys, *argv)
    cells = [[x.strip() for x in line.split("|")[1:-1]] for line in out.splitlines()
             if line.startswith("| ")]  # fmt: skip
    shown = {c[0]: c[1] for c in cells}["operational"].removesuffix(" g")
    assert code == 0 and not _EXPONENT.search(shown), shown
    assert float(shown) == pytest.approx(grams, rel=5e-5)  # five significant digits


@pytest.mark.usefixtures("_no_site_config")
def test_estimate_prompts_write_micrograms_in_fixed_notation(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``estimate --prompts``' table and totals line wrote a one-token prompt's grams as
    ``6.494e-06``."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "one", "input_tokens": 1, "output_tokens": 1}\n')
    argv = (*_TINY[:9], "--prompts", str(prompts))
    code, out, _ = run_cli(capsys, *argv, "--json")
    total = json.loads(out)["total"]
    assert code == 0 and total["total_g"] < 1e-4
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0 and not _EXPONENT.search(out), out
    assert f"{fixed(total['total_g'], 4)} g ({fixed(total['total_g_p10'], 4)}-" in out


@pytest.mark.parametrize(
    ("grams", "shown"),
    [(12_345.678, "12,346 g"), (4.13e-05, "0.0000413 g"), (-2.5e-05, "-0.000025 g"),
     (None, "-")],
)  # fmt: skip
def test_status_writes_grams_in_fixed_notation(grams: float | None, shown: str) -> None:
    """``carbond status ID``'s expected, predicted and saved grams were ``.4g``: a job's
    microgram saving read ``4.13e-05 g`` and a large job's ``1.235e+04 g``."""
    from daemon.cli.status_cmd import _g

    assert _g(grams) == shown


def test_status_writes_on_site_kwh_in_fixed_notation(capsys: pytest.CaptureFixture[str]) -> None:
    """A long job's on-site energy read ``of 1.235e+04 kWh``."""
    from daemon.cli.status_cmd import _print_on_site

    joules = 12_345.6 * J_PER_KWH
    _print_on_site({"site_pv_j": joules / 2, "site_battery_j": 0.0, "site_grid_j": joules / 2})
    assert "on site: 50.0% of 12,346 kWh (PV 50.0%" in capsys.readouterr().out


@pytest.mark.usefixtures("_no_site_config")
@pytest.mark.parametrize("prompts", [False, True])
def test_estimate_writes_a_given_intensity_in_fixed_notation(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, prompts: bool
) -> None:
    """``estimate --intensity 0.00001`` wrote ``1e-05 gCO2e/kWh`` (``:g``), in the table's
    intensity row and in ``--prompts``' title; ``1234.56789`` keeps its six digits."""
    extra: tuple[str, ...] = ()
    if prompts:
        path = tmp_path / "prompts.jsonl"
        path.write_text('{"id": "one", "input_tokens": 1, "output_tokens": 1}\n')
        extra = ("--prompts", str(path))
    for given, shown in (("0.00001", "0.00001"), ("1234.56789", "1,234.57")):
        argv = (*_TINY[:5], "--intensity", given, *_TINY[7:9], *(extra or _TINY[9:]))
        code, out, _ = run_cli(capsys, *argv)
        assert code == 0 and f"{shown} gCO2e/kWh" in out, out
        assert "e-05" not in out
