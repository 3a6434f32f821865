"""``carbond gpus --live``: live readings from the configured backend, or one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.gpu.fake_nvml import FakeGpu, FakeNvml
from daemon.gpu.power_curve import PowerCurve


@pytest.fixture(autouse=True)
def _no_site_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CARBOND_CONFIG", raising=False)
    monkeypatch.delenv("CARBOND_GPU__BACKEND", raising=False)
    monkeypatch.setattr("daemon.settings.DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")


def fake_pynvml(monkeypatch: pytest.MonkeyPatch, *, driver_loaded: bool) -> None:
    gpu = FakeGpu(power=PowerCurve(0.0, 123.0), name="NVIDIA H100 80GB HBM3", fan_pct=None)
    fake = FakeNvml([gpu], lambda: 1.0, driver_loaded=driver_loaded)
    monkeypatch.setattr("daemon.gpu.nvml.load_pynvml", lambda: fake)


def test_live_json_from_nvml(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_pynvml(monkeypatch, driver_loaded=True)
    assert main(["gpus", "--live", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["backend"] == "nvml"
    assert (row["name"], row["catalog_name"]) == ("NVIDIA H100 80GB HBM3", "H100-SXM")
    assert row["power_w"] == 123.0
    assert row["fan_pct"] is None
    assert row["energy_counter"] is True


def test_live_simulated_devices(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CARBOND_GPU__BACKEND", "simulated")
    monkeypatch.setenv("CARBOND_GPU__SIMULATED_GPUS", '["T4", "L4"]')
    assert main(["gpus", "--live", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["backend"], r["name"], r["power_w"]) for r in rows] == [
        ("simulated", "T4", 10.0),
        ("simulated", "L4", 16.0),
    ]
    assert main(["gpus", "--live"]) == 0
    assert "GPUs on this node (simulated)" in capsys.readouterr().out


def test_without_nvml_one_line_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_pynvml(monkeypatch, driver_loaded=False)
    assert main(["gpus", "--live"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "Driver Not Loaded" in err
    assert "CARBOND_GPU__BACKEND=simulated" in err


_REGIONS = """
[gpu]
backend = "{backend}"
simulated_gpus = ["A100-80GB"]
simulated_power_factor = 1.5

[[regions]]
name = "qc"
zone = "CA-QC"
executor = "simulated"
gpus = ["T4", "L4"]

[[regions]]
name = "here"
zone = "DE"
gpus = {here}

[[regions]]
name = "far"
zone = "FR"
executor = "slurm"
gpus = ["H100-SXM"]
[regions.slurm]
partition = "gpu"
"""


def _config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, backend: str, here: str) -> None:
    path = tmp_path / "carbond.toml"
    path.write_text(_REGIONS.format(backend=backend, here=here))
    monkeypatch.setenv("CARBOND_CONFIG", str(path))


def test_live_lists_the_simulated_gpus_the_daemon_runs_per_region(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``gpu.backend = "simulated"`` listed the ``gpu.simulated_gpus`` devices (an A100 here)
    whatever the regions: not the T4 and L4 the daemon simulates and meters for region qc.
    Now the daemon's own GPUs, per region: qc's simulated devices, drawing the catalog's idle
    power times simulated_power_factor as the daemon's do; the discovering local region's
    stand-in, which the daemon does not meter (no readings); no Slurm region (not this node)."""
    _config(monkeypatch, tmp_path, "simulated", '"discover"')
    assert main(["gpus", "--live", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["region"], r["device_id"], r["executor"], r["catalog_name"], r["metered"],
             r["backend"], r["power_w"]) for r in rows] == [
        ("qc", "qc/0", "simulated", "T4", True, "simulated", 10.0 * 1.5),
        ("qc", "qc/1", "simulated", "L4", True, "simulated", 16.0 * 1.5),
        ("here", "here/0", "local", "A100-80GB", False, None, None),
    ]  # fmt: skip
    assert rows[0]["power_limit_w"] == 70.0 and rows[2]["memory_total_gb"] is None
    assert main(["gpus", "--live"]) == 0
    text = capsys.readouterr().out
    assert "GPUs the daemon runs on, per region" in text and "qc/1" in text and "far" not in text


def test_live_reads_local_gpus_through_nvml_as_the_daemon_meters_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With NVML working the daemon meters its local GPUs there, and its simulated regions'
    not at all (one backend a daemon): the rows say so."""
    fake_pynvml(monkeypatch, driver_loaded=True)
    _config(monkeypatch, tmp_path, "auto", '["H100-SXM"]')
    assert main(["gpus", "--live", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["device_id"], r["name"], r["metered"], r["backend"], r["power_w"])
            for r in rows] == [
        ("qc/0", "T4", False, None, None),
        ("qc/1", "L4", False, None, None),
        ("here/0", "NVIDIA H100 80GB HBM3", True, "nvml", 123.0),
    ]  # fmt: skip


def test_live_with_regions_and_nvml_unusable_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_pynvml(monkeypatch, driver_loaded=False)
    _config(monkeypatch, tmp_path, "nvml", '["H100-SXM"]')
    assert main(["gpus", "--live"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "CARBOND_GPU__BACKEND=simulated" in err


@pytest.mark.parametrize("here", ['"discover"', '["H100-SXM"]'])
def test_live_without_nvml_says_in_one_line_why_the_local_gpus_are_unmetered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], here: str
) -> None:
    """``gpu.backend = "auto"`` without NVML printed the daemon's own ``gpu_backend_fallback``
    and ``gpu_measurement_off`` warnings as JSON log lines next to the table; now one
    readable line says why the local GPUs are unmetered, and the rows show it."""
    fake_pynvml(monkeypatch, driver_loaded=False)
    _config(monkeypatch, tmp_path, "auto", here)
    for argv in (["gpus", "--live"], ["gpus", "--live", "--json"]):
        assert main(argv) == 0
        out, err = capsys.readouterr()
        assert err.count("\n") == 1 and "{" not in err, err
        assert err.startswith("carbond: note: local GPUs not metered (NVML: ")
        assert "Driver Not Loaded" in err
    rows = json.loads(out)
    assert [(r["device_id"], r["metered"]) for r in rows] == [
        ("qc/0", True), ("qc/1", True), ("here/0", False),
    ]  # fmt: skip


def test_live_names_the_declared_gpus_the_daemon_does_not_plan_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A declared local GPU NVML cannot run jobs on (another board at its index, MIG mode,
    none there) is never planned on by the daemon, yet ``--live`` listed it among "the GPUs
    the daemon runs on": an H100-SXM declared on an L4 as metered, its catalog name shown in
    JSON only, and the daemon's ``gpu_declared_unusable`` and ``gpu_not_schedulable`` error
    lines printed as JSON beside the table. Now each row says whether the daemon plans on it
    and why not (JSON ``planned``, ``not_planned``; the table's ``planned``), the warnings in
    one ``carbond: note:`` line."""
    gpus = [FakeGpu(PowerCurve(0.0, 70.0), name="NVIDIA L4"),
            FakeGpu(PowerCurve(0.0, 90.0), mig_mode=FakeNvml.NVML_DEVICE_MIG_ENABLE)]  # fmt: skip
    fake = FakeNvml(gpus, lambda: 1.0)
    monkeypatch.setattr("daemon.gpu.nvml.load_pynvml", lambda: fake)
    _config(monkeypatch, tmp_path, "auto", '["H100-SXM", "A100-80GB", "A100-80GB"]')
    assert main(["gpus", "--live", "--json"]) == 0
    out, err = capsys.readouterr()
    rows = [r for r in json.loads(out) if r["region"] == "here"]
    assert [(r["device_id"], r["planned"]) for r in rows] == [
        ("here/0", False), ("here/1", False), ("here/2", False),
    ]  # fmt: skip
    assert "NVML has NVIDIA L4 (L4) at index 0" in rows[0]["not_planned"]
    assert "MIG mode" in rows[1]["not_planned"]
    assert "NVML has no GPU at index 2" in rows[2]["not_planned"]
    assert err.count("\n") == 1 and "{" not in err, err
    assert err.startswith("carbond: note: GPUs not planned on (declared here/0 (H100-SXM): ")
    assert main(["gpus", "--live"]) == 0
    out, err = capsys.readouterr()
    assert "planned" in out and "{" not in err, err
    [l4] = [line for line in out.splitlines() if "here/0" in line]
    assert "False" in l4.split("|")[6]  # region, device_id, executor, name, metered, planned
