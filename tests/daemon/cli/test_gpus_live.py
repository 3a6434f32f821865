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
